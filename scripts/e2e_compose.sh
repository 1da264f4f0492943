#!/usr/bin/env bash
# The end-to-end suite against the containers (`make e2e-compose`): build the images, start
# everything and wait until every container is healthy, run tests-e2e (and the container
# fault test beside it) through the published gateway and mailbox, then always remove it all
# (containers, network, volumes), pass, fail or Ctrl-C.
#
# Honours compose's own variables: PUBLISH_ADDRESS, PUBLISH_GATEWAY_PORT, PUBLISH_MAILBOX_PORT,
# PLATFORM_NET_PREFIX, COMPOSE_PROJECT_NAME, the *_IMAGE names. When the official images
# can be neither found nor pulled (no registry), the offline stand-ins are built and used
# (docker/offline/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'e2e-compose: %s\n' "$*" >&2; }
die() { say "$*" && exit 1; }
elapsed() { echo "$((SECONDS - $1)) s"; }

# ---- the engine: compose.yaml needs Engine >= 25 (healthcheck.start_interval), Compose v2
server="$(docker version --format '{{.Server.Version}}' 2>/dev/null)" ||
    die "no Docker engine answers (make test starts one: scripts/bootstrap.sh test)"
[ "${server%%.*}" -ge 25 ] || die "Docker Engine $server; compose.yaml needs 25 or later"
compose_version="$(docker compose version --short 2>/dev/null)" ||
    die "no Compose v2 plugin (docker compose)"
say "Docker Engine $server, Compose $compose_version"

[ -f .env ] || uv run python scripts/generate_env.py
env_value() { sed -n "s/^$1=//p" .env | tail -1; }

project="$(docker compose config --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])')"

# ---- images: the official ones, else the offline stand-ins
missing=()
for image in $(docker compose config --images); do
    case "$image" in "$project"-*) continue ;; esac # built here
    docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
done
if [ "${#missing[@]}" -gt 0 ] && ! docker compose pull --ignore-buildable --quiet >/dev/null 2>&1; then
    say "cannot pull ${missing[*]}: using the offline stand-ins"
    started=$SECONDS
    docker/offline/build.sh
    while IFS= read -r assignment; do
        export "${assignment?}"
    done < <(docker/offline/build.sh --env)
    say "offline images ready in $(elapsed $started)"
fi

# ---- where the suite reaches the published ports
publish="${PUBLISH_ADDRESS:-$(env_value PUBLISH_ADDRESS)}"
case "${publish:-127.0.0.1}" in
    0.0.0.0) host=127.0.0.1 ;;
    :: | "[::]") host="[::1]" ;;
    *:*) host="[${publish#[}" && host="${host%]}]" ;;
    *) host="${publish:-127.0.0.1}" ;;
esac
gateway_port="${PUBLISH_GATEWAY_PORT:-$(env_value PUBLISH_GATEWAY_PORT)}"
mailbox_port="${PUBLISH_MAILBOX_PORT:-$(env_value PUBLISH_MAILBOX_PORT)}"
prometheus_port="${PUBLISH_PROMETHEUS_PORT:-$(env_value PUBLISH_PROMETHEUS_PORT)}"
prefix="${PLATFORM_NET_PREFIX:-$(env_value PLATFORM_NET_PREFIX)}"
prefix="${prefix:-172.29.84}"

# Docker's port proxy connects to the gateway from the network's gateway address: for this
# run it is the trusted proxy in front, and each test client names itself in X-Forwarded-For
# (tests-e2e/e2e.py), so the rate limit and the login throttle count per test, not per host.
export GATEWAY_TRUSTED_IPS="$prefix.1/32"

down() {
    say "removing the containers, network and volumes"
    docker compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 ||
        docker compose down --volumes --remove-orphans
}
trap down EXIT
trap 'exit 130' INT TERM

started=$SECONDS
docker compose build --quiet
say "images built in $(elapsed $started)"
started=$SECONDS
if ! docker compose up --detach --wait --wait-timeout 300; then
    docker compose ps --all
    docker compose logs --no-color --tail=200
    die "compose did not become healthy (a subnet that overlaps another network? set PLATFORM_NET_PREFIX)"
fi
say "compose up and healthy in $(elapsed $started):"
docker compose ps --all --format 'table {{.Service}}\t{{.Image}}\t{{.Status}}'

export GATEWAY_URL="http://$host:${gateway_port:-8000}" MAILBOX_URL="http://$host:${mailbox_port:-8025}"
export PROMETHEUS_URL="http://$host:${prometheus_port:-9090}"
E2E_ADMIN_EMAIL="$(env_value FIRST_ADMIN_EMAIL)" E2E_ADMIN_PASSWORD="$(env_value FIRST_ADMIN_PASSWORD)"
export E2E_ADMIN_EMAIL E2E_ADMIN_PASSWORD E2E_FORWARDED_FOR=1 E2E_COMPOSE_PROJECT="$project"
started=$SECONDS
status=0
uv run pytest tests-e2e --ignore=tests-e2e/containers -n 2 "$@" || status=$?
say "end-to-end suite against compose: $(elapsed $started)"
# Alone, once the suite is done: a crashing container fails whatever runs beside it.
if [ "$status" -eq 0 ]; then
    started=$SECONDS
    uv run pytest tests-e2e/containers "$@" || status=$?
    say "container fault test: $(elapsed $started)"
fi
if [ "$status" -ne 0 ]; then
    docker compose ps --all
    docker compose logs --no-color --tail=100
fi
exit "$status"
