#!/bin/sh
# PID 1 of a swarm test node: the node's own dockerd, reachable on a socket in /run/node
# (bind-mounted from the host, so the host's docker CLI drives each node) and on the node's
# own network for the swarm's traffic. Its containers live in a cgroup of their own under
# the node's name, never among the host engine's.
set -eu
mkdir -p /run/node
# The host's /sys/fs/cgroup is mounted read-write by the test harness (cgroup v1: the nested
# engine creates its cgroups there); on cgroup v2 a private namespace needs no help.
# /proc/sys is read-only in the node (no --privileged): the engine cannot turn IPv6 off on
# the overlay's interfaces, and need not, the swarm's networks being IPv4 only.
export DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
exec dockerd \
    --host unix:///run/node/docker.sock \
    --cgroup-parent "/${NODE_NAME:-swarm-node}" \
    --storage-driver overlay2 \
    --log-level warn \
    "$@"
