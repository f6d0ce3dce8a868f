# Shared helpers for encd's integration tests (bash, root). Every test creates its
# own namespaces named encd-it-<pid>-<role>, joined by veth links, on documentation
# and benchmark ranges only, and deletes them (and the encd processes it started) on
# exit, whatever happens.

set -euo pipefail
umask 077   # configuration files hold keys: encd refuses them readable by others
IT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ENCD=${ENCD:-$IT_ROOT/.build/debug/encd}
IT_ID="encd-it-$$"
IT_TMP=$(mktemp -d "/tmp/$IT_ID.XXXX")
IT_NS=()
IT_PIDS=()

it_cleanup() {
    local rc=$?
    for pid in "${IT_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${IT_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in "${IT_NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [[ $rc -ne 0 ]]; then
        for f in "$IT_TMP"/*.log; do [[ -e "$f" ]] && { echo "--- $(basename "$f")"; tail -30 "$f"; }; done
    fi
    rm -rf "$IT_TMP"
    exit $rc
}
trap it_cleanup EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
# has [GREP-OPTION...] PATTERN: whether standard input matches, read to its end first.
# Under pipefail, `producer | grep -q` can fail although it matched: grep stops at the
# first match and a producer still writing dies of SIGPIPE (policy_test did once in CI).
has() { local input; input=$(cat); grep -q "$@" <<<"$input"; }

# ns NAME: creates namespace $IT_ID-NAME with lo up; prints nothing.
ns() {
    local n="$IT_ID-$1"
    ip netns add "$n"
    IT_NS+=("$n")
    ip -n "$n" link set lo up
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
}
# in NAME CMD...: runs CMD inside namespace NAME.
on() { local n="$IT_ID-$1"; shift; ip netns exec "$n" "$@"; }

# link A IFA ADDRA B IFB ADDRB: a veth pair between namespaces A and B with addresses
# (CIDR; several comma-separated allowed, v4 and v6).
link() {
    local a=$1 ifa=$2 addra=$3 b=$4 ifb=$5 addrb=$6
    ip link add "$ifa" netns "$IT_ID-$a" type veth peer name "$ifb" netns "$IT_ID-$b"
    local x
    for x in ${addra//,/ }; do ip -n "$IT_ID-$a" addr add "$x" dev "$ifa" nodad 2>/dev/null || ip -n "$IT_ID-$a" addr add "$x" dev "$ifa"; done
    for x in ${addrb//,/ }; do ip -n "$IT_ID-$b" addr add "$x" dev "$ifb" nodad 2>/dev/null || ip -n "$IT_ID-$b" addr add "$x" dev "$ifb"; done
    ip -n "$IT_ID-$a" link set "$ifa" up
    ip -n "$IT_ID-$b" link set "$ifb" up
}

# sites: the site-to-site layout most tests use, IPv4:
#   h1 198.18.1.10 — lan 198.18.1.1 gw1 wan 192.0.2.1 — 192.0.2.2 wan gw2 lan 198.18.2.1 — 198.18.2.20 h2
sites() {
    ns h1; ns gw1; ns gw2; ns h2
    link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
    link gw1 wan 192.0.2.1/24 gw2 wan 192.0.2.2/24
    link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24
    router gw1; router gw2
    on h1 ip route add default via 198.18.1.1
    on h2 ip route add default via 198.18.2.1
    on gw1 ip route add default via 192.0.2.2
    on gw2 ip route add default via 192.0.2.1
}

# nat_sites: the same sites with gw1 behind a NAT router, as issue #10's IKE tests:
#   h1 198.18.1.10 — lan 198.18.1.1 gw1 wan 192.0.2.2 — in 192.0.2.1 nat out 203.0.113.1
#   — 203.0.113.2 wan gw2 lan 198.18.2.1 — 198.18.2.20 h2
# nat masquerades what gw1 sends, UDP to ports 40000-40100 (so gw1's 500 and 4500 are
# not what the peer sees), and forwards UDP 500 and 4500 arriving at 203.0.113.1 to
# gw1 (so gw2 can start an IKE SA with it too).
nat_sites() {
    ns h1; ns gw1; ns nat; ns gw2; ns h2
    link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
    link gw1 wan 192.0.2.2/24 nat in 192.0.2.1/24
    link nat out 203.0.113.1/24 gw2 wan 203.0.113.2/24
    link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24
    router gw1; router nat; router gw2
    on h1 ip route add default via 198.18.1.1
    on h2 ip route add default via 198.18.2.1
    on gw1 ip route add default via 192.0.2.1
    on gw2 ip route add default via 203.0.113.1
    on nat nft -f - <<NFT
table ip natbox {
    chain pre { type nat hook prerouting priority dstnat; policy accept;
        iifname "out" ip daddr 203.0.113.1 udp dport { 500, 4500 } dnat to 192.0.2.2
    }
    chain post { type nat hook postrouting priority srcnat; policy accept;
        iifname "in" oifname "out" meta l4proto udp masquerade to :40000-40100
        iifname "in" oifname "out" masquerade
    }
}
NFT
}

router() { on "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1; }

# site_confs: $IT_TMP/gw1.conf and gw2.conf for the `sites` layout: each gateway's site
# to the other's, one AES-128-GCM tunnel SA pair (spi 0x1000:0x1001, replay 64).
site_confs() {
    local gw me peer
    for gw in gw1 gw2; do
        if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
        cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    done
}

# start_encd NAME CONF [ARG...]: starts encd in namespace NAME with CONF (a file) and
# any further arguments, waits until it is up; its state survives restarts in $IT_TMP/NAME.
start_encd() {
    local name=$1 conf=$2
    shift 2
    mkdir -p "$IT_TMP/$name/state" "$IT_TMP/$name/run"
    # The log is appended to across restarts: wait for one more "started" than it has.
    local started
    started=$(grep -c "encd: started" "$IT_TMP/$name-encd.log" 2>/dev/null || true); started=${started:-0}
    # Not through `on`: a backgrounded function runs in a subshell, and $! would be that
    # shell's PID rather than encd's (stop_encd and the cleanup would miss encd).
    ip netns exec "$IT_ID-$name" "$ENCD" -d -f "$conf" -L "$IT_TMP/$name/state" -R "$IT_TMP/$name/run" "$@" >>"$IT_TMP/$name-encd.log" 2>&1 &
    local pid=$!
    IT_PIDS+=("$pid")
    eval "ENCD_PID_${name//-/_}=$pid"
    for _ in $(seq 100); do
        local now; now=$(grep -c "encd: started" "$IT_TMP/$name-encd.log" 2>/dev/null || true)
        (( ${now:-0} > started )) && return 0
        kill -0 "$pid" 2>/dev/null || fail "encd in $name exited: $(tail -5 "$IT_TMP/$name-encd.log")"
        sleep 0.1
    done
    fail "encd in $name did not start"
}
encd_pid() { local v="ENCD_PID_${1//-/_}"; echo "${!v}"; }

stop_encd() {
    local pid; pid=$(encd_pid "$1")
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    fail "encd in $1 did not stop"
}

# capture NAME IF FILE / stop_capture NAME IF: the same as pcap_start / pcap_stop below
# (tcpdump in immediate mode; stopping drains it and waits for it to exit).
capture() { pcap_start "$@"; }
stop_capture() { pcap_stop "$@"; }

# nft_counter NAME TABLE CHAIN COMMENT: the packet count of the rule with that comment.
nft_counter() {
    on "$1" nft -a list chain inet "$2" "$3" | grep "comment \"$4\"" | sed -nE 's/.*counter packets ([0-9]+).*/\1/p' | head -1
}

# tcp_transfer FROM TO ADDRESS BYTES: BYTES random bytes over TCP from namespace FROM
# to a listener in TO at ADDRESS (port 5001); fails unless they arrive intact.
tcp_transfer() {
    local from=$1 to=$2 addr=$3 bytes=$4 fam=-4 srv want
    [[ $addr == *:* ]] && fam=-6
    head -c "$bytes" /dev/urandom >"$IT_TMP/blob"
    want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
    on "$to" timeout 20 nc $fam -l -p 5001 >"$IT_TMP/got" &
    srv=$!
    sleep 0.5
    on "$from" timeout 20 nc -N "$addr" 5001 <"$IT_TMP/blob" || fail "TCP send $from -> $addr"
    wait $srv || fail "TCP receive at $to ($addr)"
    [[ $(sha256sum <"$IT_TMP/got" | cut -d' ' -f1) == "$want" ]] || fail "TCP bytes $from -> $addr differ"
}

# udp_sink SECONDS: counts the UDP datagrams that reach h2 (`sites`) at
# 198.18.2.20 port 9999 within SECONDS; prints the count when done.
udp_sink() {
    on h2 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.2.20", 9999)); s.settimeout(0.2)
n, end = 0, time.time() + float(sys.argv[1])
while time.time() < end:
    try: s.recv(64); n += 1
    except socket.timeout: pass
print(n)' "$1"
}

KEY_A=0x$(printf '11%.0s' $(seq 20)); KEY_B=0x$(printf '22%.0s' $(seq 20))
# More AES-GCM keys: encd refuses one counter-mode key on two SAs.
KEY_C=0x$(printf '55%.0s' $(seq 20)); KEY_D=0x$(printf '66%.0s' $(seq 20))
AUTH_A=0x$(printf 'aa%.0s' $(seq 32)); AUTH_B=0x$(printf 'bb%.0s' $(seq 32))
CBC_A=0x$(printf '33%.0s' $(seq 16)); CBC_B=0x$(printf '44%.0s' $(seq 16))

# pcap_start NAME IF FILE: tcpdump in namespace NAME on IF into FILE, as this shell's
# own child, delivering every packet at once; FILE is complete when pcap_stop returns.
pcap_start() {
    local log="$IT_TMP/pcap-$1-${2//[^a-zA-Z0-9]/_}.log"
    # A 64 MiB capture buffer: with the default 2 MiB, tcpdump lost a third of a 2 MB
    # transfer once encd got faster, and a check on the wire must see every packet.
    ip netns exec "$IT_ID-$1" tcpdump -i "$2" -n -U -B 65536 --immediate-mode -w "$3" >"$log" 2>&1 &
    IT_PIDS+=("$!")
    eval "PCAP_PID_${1//-/_}_${2//[^a-zA-Z0-9]/_}=$!"
    for _ in $(seq 50); do grep -q "listening" "$log" 2>/dev/null && return 0; sleep 0.1; done
    fail "tcpdump on $1 $2 did not start: $(cat "$log")"
}
# pcap_stop NAME IF: stops the capture pcap_start began and waits until tcpdump exits.
pcap_stop() {
    local v="PCAP_PID_${1//-/_}_${2//[^a-zA-Z0-9]/_}"
    local pid=${!v}
    sleep 0.5   # let tcpdump read what the kernel holds for it: SIGINT ends its loop at once
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid" 2>/dev/null || true
}
