#!/bin/sh
# As the official image's: flags or a subcommand alone mean `traefik <them>`.
set -e
if [ "${1#-}" != "$1" ] || traefik "$1" --help >/dev/null 2>&1; then
    set -- traefik "$@"
fi
exec "$@"
