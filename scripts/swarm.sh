#!/usr/bin/env bash
# The platform on a local one-node Docker Swarm (`make swarm-up`, `make swarm-down`).
#
#   scripts/swarm.sh up            build the images, make this engine a swarm (if it is not one),
#                                  label its node, write the secrets, deploy, wait until converged
#   scripts/swarm.sh down          remove the stack; leave the swarm if `up` created it
#   scripts/swarm.sh config-hash   the content hash the stack's configs are named with
#
# Variables: SWARM_STACK (platform), GATEWAY_PORT (8000), MAILBOX_PORT (8025), IMAGE_PREFIX and
# IMAGE_TAG (images already built or pushed: nothing is built), the *_IMAGE names and
# *_REPLICAS of deploy/swarm/stack.yml. Volumes survive `down` (docker volume ls).
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${SWARM_STACK:-platform}"
STACK_FILE=deploy/swarm/stack.yml
CREATED_MARKER=.dev/swarm-created-by-make
say() { printf 'swarm: %s\n' "$*" >&2; }
die() { say "$*" && exit 1; }

config_hash() {
    cat gateway/traefik.yml gateway/dynamic.yml gateway/start.sh gateway/healthcheck.sh \
        docker/postgres/init-databases.sh deploy/swarm/secrets-env.sh | sha256sum | cut -c1-12
}

up() {
    docker info >/dev/null 2>&1 || die "no Docker engine answers (make test starts one)"
    [ -f .env ] || uv run python scripts/generate_env.py
    set -a && . ./.env && set +a

    # The images: with IMAGE_PREFIX set, the services' images are there already (a registry);
    # otherwise built here as compose builds them, from the official images or, where no
    # registry answers, the offline stand-ins (as make e2e-compose does).
    if [ -z "${IMAGE_PREFIX:-}" ]; then
        if ! docker compose pull --ignore-buildable --quiet >/dev/null 2>&1; then
            say "no registry: using the offline stand-ins (docker/offline/build.sh)"
            docker/offline/build.sh
            while IFS= read -r assignment; do
                export "${assignment?}"
            done < <(docker/offline/build.sh --env)
        fi
        docker compose build --quiet
        IMAGE_PREFIX="$(docker compose config --format json |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["name"])')-"
        export IMAGE_PREFIX
    fi

    if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
        say "making this engine a one-node swarm (docker swarm init)"
        docker swarm init --advertise-addr 127.0.0.1 >/dev/null
        mkdir -p .dev && touch "$CREATED_MARKER"
    fi
    docker node update --label-add platform.data=true --label-add platform.edge=true \
        "$(docker info --format '{{.Swarm.NodeID}}')" >/dev/null

    SECRETS_HASH="$(uv run python scripts/swarm_secrets.py)"
    CONFIG_HASH="$(config_hash)"
    export SECRETS_HASH CONFIG_HASH
    say "deploying the stack $STACK"
    started=$SECONDS
    docker stack deploy --detach=false --compose-file "$STACK_FILE" "$STACK" >/dev/null
    say "converged in $((SECONDS - started)) s:"
    docker stack services "$STACK" --format 'table {{.Name}}\t{{.Replicas}}\t{{.Image}}'
    say "gateway on http://localhost:${GATEWAY_PORT:-8000}, mailbox on http://localhost:${MAILBOX_PORT:-8025}"
}

down() {
    if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
        docker stack rm "$STACK" >/dev/null
        # The stack's network goes last, once its tasks are gone.
        for _ in $(seq 60); do
            docker network inspect "${STACK}_platform" >/dev/null 2>&1 || break
            sleep 1
        done
        say "removed the stack $STACK (its volumes stay: docker volume ls)"
    fi
    if [ -f "$CREATED_MARKER" ]; then
        docker swarm leave --force >/dev/null
        rm -f "$CREATED_MARKER"
        say "left the swarm make swarm-up created"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    config-hash) config_hash ;;
    *) echo "usage: $0 up|down|config-hash" >&2 && exit 2 ;;
esac
