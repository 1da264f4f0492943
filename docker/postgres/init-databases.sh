#!/usr/bin/env bash
# Creates each service's role and database: one database per service, owned by its role,
# reachable by that role only. Mounted into /docker-entrypoint-initdb.d by compose.yaml.
#
# The postgres image runs this ONCE, when its data volume is empty. Changing a password in
# .env later changes nothing here: recreate the volume (`docker compose down -v`, which
# deletes the data) or ALTER ROLE by hand.
#
# The image may source this file instead of running it (when it is not executable), so: no
# `exit`, no `set -u` (it would leak into the image's own entrypoint), functions prefixed.
set -Eeo pipefail

# platform_create_service_database NAME PASSWORD
platform_create_service_database() {
    # The password travels in the environment and is read with psql's \getenv, never on a
    # command line (visible in ps) nor spliced into SQL text; :"name" and :'password' are
    # quoted by psql itself.
    PLATFORM_DB_PASSWORD="$2" psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
        --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
        --set=name="$1" <<'SQL'
\getenv password PLATFORM_DB_PASSWORD
CREATE ROLE :"name" WITH LOGIN PASSWORD :'password';
CREATE DATABASE :"name" WITH OWNER :"name";
-- Every role may connect to every database by default; only the owner may here.
REVOKE CONNECT, TEMPORARY ON DATABASE :"name" FROM PUBLIC;
SQL
    echo "init-databases: created role and database \"$1\""
}

: "${AUTH_DB_PASSWORD:?is not set: run scripts/generate_env.py}"
: "${USERS_DB_PASSWORD:?is not set: run scripts/generate_env.py}"
: "${ITEMS_DB_PASSWORD:?is not set: run scripts/generate_env.py}"
: "${NOTIFICATIONS_DB_PASSWORD:?is not set: run scripts/generate_env.py}"

platform_create_service_database auth "$AUTH_DB_PASSWORD"
platform_create_service_database users "$USERS_DB_PASSWORD"
platform_create_service_database items "$ITEMS_DB_PASSWORD"
platform_create_service_database notifications "$NOTIFICATIONS_DB_PASSWORD"
