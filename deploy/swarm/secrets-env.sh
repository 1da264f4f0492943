#!/bin/sh
# Entry point prefix of the swarm's containers: every Docker secret mounted under an
# upper-case name (/run/secrets/DATABASE_URL) becomes that environment variable, then the
# image's own entry point runs. The values never appear in the service's definition
# (`docker service inspect`), only inside the container that needs them.
set -eu
for secret in "${SECRETS_DIR:-/run/secrets}"/*; do
    [ -f "$secret" ] || continue
    name="${secret##*/}"
    case "$name" in
        *[!A-Z0-9_]* | [0-9]*) continue ;; # not a variable name: a file the process reads itself
    esac
    value="$(cat "$secret")"
    export "$name=$value"
done
exec "$@"
