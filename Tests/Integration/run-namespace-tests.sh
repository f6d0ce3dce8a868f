#!/usr/bin/env bash
# Root-only end-to-end tests of the Kernel module on the real kernel.
#
# Creates two network namespaces joined by a veth pair (documentation addresses only),
#   host  e0 198.51.100.1/24 2001:db8:1::1/64   (encd's side; the tests run here)
#   peer  p0 198.51.100.2/24 2001:db8:1::2/64
# then runs the KernelNamespaceTests suite *inside* the host namespace with
# `ip netns exec`: the whole test process lives there, so Swift Testing's thread pool
# never needs setns(2) (which is per thread and unsafe with a shared pool). The suite
# is .serialized and refuses to run unless /proc/self/ns/net is that namespace.
# Namespaces are deleted on exit, also on failure or ^C.
#
# Usage (from the package root, as root): Tests/Integration/run-namespace-tests.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "run as root (needs CAP_NET_ADMIN for namespaces)" >&2; exit 1; }

ID="encd-kernel-$$"
HOST="$ID-host"
PEER="$ID-peer"

cleanup() {
    ip netns del "$HOST" 2>/dev/null || true
    ip netns del "$PEER" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

swift build --build-tests >/dev/null

ip netns add "$HOST"
ip netns add "$PEER"
ip link add e0 netns "$HOST" type veth peer name p0 netns "$PEER"
for ns in "$HOST" "$PEER"; do ip -n "$ns" link set lo up; done
ip -n "$HOST" addr add 198.51.100.1/24 dev e0
ip -n "$HOST" addr add 2001:db8:1::1/64 dev e0 nodad
ip -n "$PEER" addr add 198.51.100.2/24 dev p0
ip -n "$PEER" addr add 2001:db8:1::2/64 dev p0 nodad
ip -n "$HOST" link set e0 up
ip -n "$PEER" link set p0 up
ip -n "$HOST" route add default via 198.51.100.2
ip -n "$HOST" -6 route add default via 2001:db8:1::2
# Strict reverse-path filtering everywhere: the tests show enc0's loose mode is what lets
# injected packets in.
ip netns exec "$HOST" sysctl -qw net.ipv4.conf.all.rp_filter=1
ip netns exec "$HOST" sysctl -qw net.ipv4.conf.default.rp_filter=1

ENCD_TEST_NETNS="$HOST" ENCD_TEST_PEER_NETNS="$PEER" \
    ip netns exec "$HOST" swift test --skip-build --filter KernelNamespaceTests "$@"
