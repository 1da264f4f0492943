# Stand-in for postgres:15-alpine: Debian bookworm's PostgreSQL 15 (the major version
# compose.yaml names; tests-deploy checks the pair), with the official image's contract:
# POSTGRES_PASSWORD/USER/DB, /docker-entrypoint-initdb.d run once on an empty data directory
# by a server on its Unix socket only, then `postgres` as user postgres.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /docker-entrypoint-initdb.d /var/run/postgresql \
    && chown postgres:postgres /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
