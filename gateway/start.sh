#!/bin/sh
# compose's entry point for Traefik. Traefik takes its static configuration from one source
# only (a file, or flags, never both), so the trusted proxies cannot be a flag beside
# traefik.yml: they are written into a copy of it, which Traefik then runs on.
set -eu
trusted="${GATEWAY_TRUSTED_IPS:-}"
case "$trusted" in
    *[!0-9A-Fa-f.:/,]*)
        echo "GATEWAY_TRUSTED_IPS: addresses or CIDRs, comma-separated, no spaces: '$trusted'" >&2
        exit 1
        ;;
esac
sed "s|trustedIPs: \[\] # GATEWAY_TRUSTED_IPS|trustedIPs: [$trusted]|" /etc/traefik/traefik.yml \
    >/tmp/traefik.yml
exec traefik --configFile=/tmp/traefik.yml "$@"
