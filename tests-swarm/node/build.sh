#!/usr/bin/env bash
# The image of a swarm test node: Debian trixie (debootstrap, minbase) with Debian's own
# docker.io (Engine 26) and docker-cli, started by entrypoint.sh. Each node of the test swarm is
# one container of this image running its own dockerd (a nested engine, the machine it stands
# for). No registry is needed: the packages come from the Debian archive.
#
#   tests-swarm/node/build.sh            prints the image name; builds it only when missing
#
# The tag is a hash of this directory, so an edit here builds a new image and an unchanged
# one is reused between runs (about 40 s to build, then nothing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { printf 'swarm-node: %s\n' "$*" >&2; }

tag="$(cat "$here"/build.sh "$here"/entrypoint.sh | sha256sum | cut -c1-12)"
image="platform-swarm-node:$tag"
if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || { say "debootstrap needs root"; exit 1; }
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
rootfs="$(mktemp -d /tmp/platform-swarm-node.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
say "building $image (debootstrap trixie with docker.io)"
debootstrap --variant=minbase \
    --include=docker.io,docker-cli,iptables,iproute2,ca-certificates,procps \
    trixie "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
    "$rootfs"/usr/share/man "$rootfs"/usr/share/locale
install -m 0755 "$here/entrypoint.sh" "$rootfs/usr/local/bin/swarm-node"
tar -C "$rootfs" -c . | docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/swarm-node"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'VOLUME /var/lib/docker' \
    - "$image" >/dev/null
# Earlier builds of this image are stale: only the current one is kept.
docker image ls --format '{{.Repository}}:{{.Tag}}' platform-swarm-node |
    grep -vx "$image" | xargs -r docker image rm >/dev/null 2>&1 || true
say "built $image"
echo "$image"
