#!/usr/bin/env bash
# The safety defects of issue #7, each reproduced on the real kernel:
#   h1 198.18.1.10 — gw1 — internet 192.0.2.0/24 — gw2 — h2 198.18.2.20
# with an AES-GCM tunnel (replay window 64) between gw1 and gw2.
#   D1  a damaged, truncated or unreadable sequence state file, or a limit near 2^64,
#       refuses the start (naming file and line), never restarts at 1
#   D3  one AES-GCM key on two SA statements is refused (encd -n and encctl -f)
#   D8  a lifetime near 2^64 does not crash the running daemon
#   D4  after kill -9, a start that fails late (a control socket path it cannot bind)
#       leaves the crashed encd's table in place: nothing crosses in cleartext
#   D5  a clean stop (SIGTERM) leaves the table failing closed, so a restart under a
#       ping flood puts zero cleartext on the wire; `encd -U` then removes it all
#   D7  cleartext UDP 4500 and protocol 50 from the internet to a protected host (not
#       to gw1 itself) are dropped by require_in, not forwarded
#   D9  with no route back to the remote site (no default route) traffic still flows:
#       the kernel's reverse-path filter accepts what encd writes into enc0
#   D10 `nft flush ruleset` and other processes' changes cannot remove or empty the table
# Each defect is a function; SAFETY_SECTIONS picks some (default: all, in order).
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
STATE_FLAG=${STATE_FLAG:--L}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

site_confs   # lib.sh: the tunnel between the two sites

# leaks FILE: the cleartext ICMP between the two sites in a capture.
leaks() { tcpdump -n -r "$1" 'icmp and net 198.18.0.0/16' 2>/dev/null | wc -l; }
# refused_start NAME WHAT: encd on gw1 must exit with an error (not hang, not crash)
# and say WHAT (an extended regular expression).
refused_start() {
    local rc=0
    on gw1 timeout 20 "$ENCD" -d -f "$IT_TMP/gw1.conf" $STATE_FLAG "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" \
        >"$IT_TMP/$1.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "$1: encd started"
    [[ $rc -ne 124 ]] || fail "$1: encd did not exit"
    [[ $rc -lt 128 ]] || fail "$1: encd crashed (status $rc): $(tail -3 "$IT_TMP/$1.out")"
    grep -qE "$2" "$IT_TMP/$1.out" || fail "$1: no message matching '$2': $(tail -3 "$IT_TMP/$1.out")"
    ok "$1: refused (exit $rc): $(grep -oE "$2.*" "$IT_TMP/$1.out" | head -1)"
}

# running NAME: encd runs in NAME (started with its file if not).
running() {
    local v="ENCD_PID_${1//-/_}"; local pid=${!v:-}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then return 0; fi
    [[ -e $IT_TMP/$1-encd.log ]] && mv "$IT_TMP/$1-encd.log" "$IT_TMP/$1-encd.$(date +%s%N).log"
    start_encd "$1" "$IT_TMP/$1.conf"
}
# stopped NAME: encd in NAME is not running (SIGTERM if it was).
stopped() {
    local v="ENCD_PID_${1//-/_}"; local pid=${!v:-}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then stop_encd "$1"; fi
    return 0
}

# --- D1: the sequence state file ---------------------------------------------------------
D1() {
    running gw1; running gw2
    on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 through the tunnel"
    ok "tunnel up"
    stopped gw1
    state=$IT_TMP/gw1/state/sequences
    [[ -s $state ]] || fail "encd left no sequence state in $state"
    cp "$state" "$IT_TMP/sequences.good"

    { cat "$IT_TMP/sequences.good"; printf '\xff\xfe\xfd bad\n'; } >"$state"
    refused_start damaged-utf8 "sequences:[0-9]+"
    head -c 20 "$IT_TMP/sequences.good" >"$state"
    refused_start truncated "sequences:1"
    sed -E 's/ [0-9]+( |$)/ 18446744073709551615\1/' "$IT_TMP/sequences.good" >"$state"
    refused_start near-2^64 "sequences:[0-9]+"
    rm -f "$state"; mkdir "$state"
    refused_start unreadable "sequences"
    rmdir "$state"
    cp "$IT_TMP/sequences.good" "$state"
    ! on gw1 ip link show enc0 >/dev/null 2>&1 || fail "a refused start left enc0 behind"
}

# --- D3: one AES-GCM key on two SA statements ---------------------------------------------
D3() {
    cat >"$IT_TMP/samekey.conf" <<CONF
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000 enc aes-128-gcm enckey $KEY_A
esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x1001 enc aes-128-gcm enckey $KEY_A
CONF
    chmod 600 "$IT_TMP/samekey.conf"
    rc=0; on gw1 "$ENCD" -n -f "$IT_TMP/samekey.conf" >"$IT_TMP/samekey.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "encd -n accepts one AES-GCM key on two SAs"
    grep -qE "samekey\.conf:2:[0-9]+: .*(key|nonce)" "$IT_TMP/samekey.out" || fail "key reuse message: $(cat "$IT_TMP/samekey.out")"
    ! grep -qi "${KEY_A#0x}" "$IT_TMP/samekey.out" || fail "the key reuse message repeats the key"
    ok "encd -n refuses one AES-GCM key on two SA statements: $(grep -oE 'samekey\.conf:2:.*' "$IT_TMP/samekey.out" | head -1)"

    running gw1
    cat >"$IT_TMP/renumber.conf" <<CONF
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x2000 enc aes-128-gcm enckey $KEY_A
CONF
    rc=0; on gw1 "$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -f "$IT_TMP/renumber.conf" >"$IT_TMP/renumber.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "encctl -f added a second SA with the running SA's AES-GCM key"
    ok "encctl -f refuses a second SA with a running SA's AES-GCM key: $(head -1 "$IT_TMP/renumber.out")"
}

# --- D8: a lifetime near 2^64 -----------------------------------------------------------
D8() {
    running gw1
    cat >"$IT_TMP/lifetime.conf" <<CONF
esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x3000 enc aes-128-gcm enckey 0x$(printf '55%.0s' $(seq 20)) lifetime hard seconds 18446744073709551615 firstuse 18446744073709551615 lifetime soft seconds 18446744073709551614
CONF
    on gw1 "$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -f "$IT_TMP/lifetime.conf" >/dev/null || fail "encctl -f of a huge lifetime"
    sleep 2.5
    kill -0 "$(encd_pid gw1)" 2>/dev/null || fail "encd died with a lifetime near 2^64: $(tail -3 "$IT_TMP/gw1-encd.log")"
    on gw1 "$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -s sa -v >"$IT_TMP/lifetime.out" || fail "encctl -s sa -v with a huge lifetime"
    grep -q "spi 0x00003000" "$IT_TMP/lifetime.out" || fail "the huge-lifetime SA is not shown: $(cat "$IT_TMP/lifetime.out")"
    ok "a lifetime of 2^64-1 seconds: encd runs on and encctl shows the SA"
}

# --- D4: a failed start after a crash keeps the crashed encd's table ----------------------
D4() {
    running gw1; running gw2
    kill -KILL "$(encd_pid gw1)"
    { wait "$(encd_pid gw1)"; } 2>/dev/null || true
    on gw1 nft list table inet encd >/dev/null 2>&1 || fail "the SIGKILLed encd's table is gone"
    : >"$IT_TMP/not-a-socket"
    rc=0
    on gw1 timeout 20 "$ENCD" -d -f "$IT_TMP/gw1.conf" $STATE_FLAG "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" \
        -s "$IT_TMP/not-a-socket" >"$IT_TMP/latefail.out" 2>&1 || rc=$?
    [[ $rc -ne 0 && $rc -ne 124 ]] || fail "encd with an unusable control socket path: status $rc"
    on gw1 nft list table inet encd >/dev/null 2>&1 || fail "a start that failed late removed the table: $(tail -2 "$IT_TMP/latefail.out")"
    capture gw1 wan "$IT_TMP/latefail.pcap"
    on h1 ping -c 5 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "h1 reached h2 with no encd on gw1"
    stop_capture gw1 wan
    [[ $(leaks "$IT_TMP/latefail.pcap") -eq 0 ]] || fail "cleartext on the internet link after a failed start: $(tcpdump -n -r "$IT_TMP/latefail.pcap" icmp 2>/dev/null | head -3)"
    ok "kill -9, then a start that fails late: the table stays, nothing leaves in cleartext"
}

# --- D5: a clean stop keeps failing closed; restart under a flood leaks nothing -----------
D5() {
    running gw1; running gw2
    # After a crash (D4) gw1's inbound SA starts above the numbers it had recorded as
    # acceptable, ahead of use: the peer's next packets up to there are refused (one
    # small chunk), so no packet accepted before the crash can be replayed.
    on h1 ping -n -q -c 150 -i 0.02 -W 1 198.18.2.20 >"$IT_TMP/after-crash.out" 2>&1 || true
    local got; got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/after-crash.out")
    [[ ${got:-0} -ge 50 ]] || fail "no traffic after the restart: $(tail -2 "$IT_TMP/after-crash.out")"
    ok "traffic flows after the restart ($((150 - got)) of 150 echo replies refused while gw2 passed gw1's recorded inbound mark)"
    capture gw1 wan "$IT_TMP/restart.pcap"
    on h1 ping -n -q -i 0.005 -c 800 -W 1 198.18.2.20 >"$IT_TMP/flood.out" 2>&1 &
    flood=$!
    sleep 1
    stopped gw1
    on gw1 nft list table inet encd >/dev/null 2>&1 || fail "SIGTERM removed the table: require traffic would leave in cleartext"
    sleep 0.5
    running gw1
    wait $flood || true
    stop_capture gw1 wan
    [[ $(leaks "$IT_TMP/restart.pcap") -eq 0 ]] || fail "$(leaks "$IT_TMP/restart.pcap") cleartext packets during a clean restart"
    got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/flood.out")
    [[ ${got:-0} -gt 0 ]] || fail "no echo replies during the restart flood: $(cat "$IT_TMP/flood.out")"
    ok "SIGTERM, restart under a ping flood: $got of 800 answered, 0 cleartext packets on the internet link"
    # A clean stop recorded exactly how far each SA got: after it nothing is refused.
    stopped gw1; running gw1
    on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >"$IT_TMP/clean.out" 2>&1 || fail "after a clean restart: $(tail -2 "$IT_TMP/clean.out")"
    ok "after a clean restart the first pings are answered: $(grep -o '[0-9]* received' "$IT_TMP/clean.out")"

    stopped gw1
    on gw1 "$ENCD" -U $STATE_FLAG "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" >"$IT_TMP/unload.out" 2>&1 || fail "encd -U: $(cat "$IT_TMP/unload.out")"
    ! on gw1 nft list table inet encd >/dev/null 2>&1 || fail "encd -U left the table"
    ! on gw1 ip rule show | has -E "lookup (3660|0xe4c)" || fail "encd -U left a policy rule: $(on gw1 ip rule show)"
    ok "encd -U after a stop removes the table and the policy rules: $(head -1 "$IT_TMP/unload.out")"
    running gw1
    rc=0; on gw1 "$ENCD" -U $STATE_FLAG "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" >"$IT_TMP/unload-running.out" 2>&1 || rc=$?
    [[ $rc -ne 0 ]] || fail "encd -U while encd runs"
    on gw1 nft list table inet encd >/dev/null 2>&1 || fail "a refused encd -U removed the running table"
    ok "encd -U is refused while encd runs: $(head -1 "$IT_TMP/unload-running.out")"
}

# --- D7: cleartext to a protected host on the NAT-T port or as ESP -------------------------
D7() {
    running gw1; running gw2
    on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "tunnel after the restarts"
    GW1_MAC=$(on gw1 cat /sys/class/net/wan/address)
    capture h1 eth0 "$IT_TMP/forged.pcap"
    on gw2 python3 - "$GW1_MAC" <<'PY' || fail "sending forged cleartext from the internet"
import sys
from scapy.all import Ether, IP, UDP, Raw, sendp
mac = sys.argv[1]
frames = [Ether(dst=mac) / IP(src="198.18.2.20", dst="198.18.1.10") / UDP(sport=4500, dport=4500) / Raw(b"\x01\x02\x03\x04 forged"),
          Ether(dst=mac) / IP(src="198.18.2.20", dst="198.18.1.10", proto=50) / Raw(b"\x00\x00\x10\x00\x00\x00\x00\x01 forged"),
          Ether(dst=mac) / IP(src="198.18.2.20", dst="198.18.1.10", proto=51) / Raw(b"\x04\x04\x00\x00\x00\x00\x10\x00 forged")]
for f in frames * 3:
    sendp(f, iface="wan", verbose=False)
PY
    sleep 0.5
    stop_capture h1 eth0
    forged=$(tcpdump -n -r "$IT_TMP/forged.pcap" 'host 198.18.2.20 and (udp port 4500 or proto 50 or proto 51)' 2>/dev/null | wc -l)
    [[ $forged -eq 0 ]] || fail "$forged forged cleartext packets reached h1: $(tcpdump -n -r "$IT_TMP/forged.pcap" 2>/dev/null | head -3)"
    on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "tunnel after the forged packets"
    ok "UDP 4500, ESP and AH in cleartext from the internet to a protected host: dropped (0 reached h1); the tunnel still works"
}

# --- D9: no route back to the remote site ------------------------------------------------
D9() {
    running gw1; running gw2
    on gw1 ip route del default
    on gw2 ip route del default
    on gw1 sysctl -qw net.ipv4.conf.all.rp_filter=1
    on gw2 sysctl -qw net.ipv4.conf.all.rp_filter=1
    on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >"$IT_TMP/noroute.out" 2>&1 \
        || fail "no traffic without a route back (strict rp_filter): $(tail -2 "$IT_TMP/noroute.out"); gw2 IPReversePathFilter $(on gw2 nstat -az IPReversePathFilter | tail -1)"
    tcp_transfer h2 h1 198.18.1.10 200000
    ok "no default route on either gateway, rp_filter strict: ping and 200 kB of TCP through the tunnel"
}

# --- D10: the table removed or emptied behind encd's back ---------------------------------
# encd's table is owned by its netlink socket and persists when encd exits (Linux >= 6.9):
# `nft flush ruleset` passes it by, and deleting or flushing it (or a chain of it) is
# refused while encd runs. On older kernels encd puts a removed table back within a
# second instead (RulesetPresenceTests).
D10() {
    running gw1; running gw2
    capture gw1 wan "$IT_TMP/flush.pcap"
    on h1 ping -n -q -i 0.01 -c 300 -W 1 198.18.2.20 >/dev/null 2>&1 &
    local flood=$!
    sleep 0.5
    on gw1 nft flush ruleset
    on gw1 nft list table inet encd >/dev/null 2>&1 || fail "nft flush ruleset removed encd's table"
    local refused=0 what
    for what in "flush table inet encd" "delete table inet encd" "flush chain inet encd spd_forward" "delete chain inet encd ipsec_output"; do
        if on gw1 nft $what >/dev/null 2>&1; then fail "nft $what was allowed while encd runs"; fi
        refused=$((refused + 1))
    done
    wait $flood || true
    stop_capture gw1 wan
    [[ $(leaks "$IT_TMP/flush.pcap") -eq 0 ]] || fail "$(leaks "$IT_TMP/flush.pcap") cleartext packets while the ruleset was flushed"
    on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "no traffic after the flush"
    ok "nft flush ruleset leaves encd's table (owned by encd); $refused changes to it refused while encd runs; 0 cleartext during a 100/s ping"
}

for section in ${SAFETY_SECTIONS:-D1 D3 D8 D4 D5 D7 D9 D10}; do
    echo "== $section"
    $section
done
