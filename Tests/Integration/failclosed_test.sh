#!/usr/bin/env bash
# Fail closed, restart and clean stop: h1 — gw1 — internet — gw2 — h2 with encd on both
# gateways (AES-GCM tunnel, replay window 64). A ping flood from h1 to h2 runs while
# encd on gw1 is killed with SIGKILL and started again on the same state directory.
# The internet link must carry no cleartext at any time (before, while gw1 has no encd,
# after), and nothing at all from gw1 while it has none; after the restart traffic flows
# again, which gw2's replay check allows only because gw1's sequence numbers went on
# upwards (asserted from the ESP sequence numbers in the capture too). Overloaded and
# hung: with gw1's encd stopped (SIGSTOP) a UDP flood fills its [X] queue; the kernel
# drops the overflow, none of it leaves in cleartext, encstat shows the loss, and after
# SIGCONT traffic flows again. Then: a second encd on the same run directory is
# refused, `encd -n` checks files, and a SIGTERM on both gateways leaves no table,
# rule, route or enc0 behind.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
[[ -x $ENCSTAT ]] || fail "no encstat at $ENCSTAT (swift build --product encstat)"

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

site_confs   # lib.sh: the tunnel between the two sites
for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw.conf"; done

# --- configuration checks and the single-instance lock --------------------------------
on gw1 "$ENCD" -n -f "$IT_TMP/gw1.conf" >"$IT_TMP/check-good.out" 2>&1 || fail "encd -n rejects a good file: $(cat "$IT_TMP/check-good.out")"
ok "encd -n accepts a good file: $(cat "$IT_TMP/check-good.out")"

cat >"$IT_TMP/broken.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0xff:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
rc=0; on gw1 "$ENCD" -n -f "$IT_TMP/broken.conf" >"$IT_TMP/check-bad.out" 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "encd -n accepts a file with a reserved SPI"
grep -qE "broken\.conf:2:[0-9]+: 255 within reserved spi range" "$IT_TMP/check-bad.out" \
    || fail "encd -n gives no file:line:column message: $(cat "$IT_TMP/check-bad.out")"
! grep -qi "${KEY_A#0x}" "$IT_TMP/check-bad.out" || fail "encd -n repeats key material"
ok "encd -n refuses a broken file (exit $rc): $(grep -E 'broken\.conf:2:' "$IT_TMP/check-bad.out" | head -1)"

rc=0
on gw1 timeout 20 "$ENCD" -d -f "$IT_TMP/gw1.conf" -S "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" >"$IT_TMP/second.out" 2>&1 || rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] || fail "a second encd in gw1 did not exit with an error (status $rc)"
grep -q "another encd is running" "$IT_TMP/second.out" || fail "second encd: $(cat "$IT_TMP/second.out")"
# It was started with the old spelling -S STATEDIR, which still works, with a warning.
grep -q -- "-S $IT_TMP/gw1/state: a directory, taken as the state directory; that is -L now" "$IT_TMP/second.out" \
    || fail "no warning for the old -S statedir: $(cat "$IT_TMP/second.out")"
on gw1 ip link show enc0 >/dev/null 2>&1 || fail "the refused second encd removed the first one's enc0"
ok "a second encd on the same run directory is refused: $(grep -o 'another encd is running.*' "$IT_TMP/second.out")"

# Without CAP_NET_ADMIN encd refuses to start, with one clear line, and touches nothing.
mkdir -p "$IT_TMP/nocap/run" "$IT_TMP/nocap/state"
if on gw2 setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-net_admin \
        "$ENCD" -d -f "$IT_TMP/gw2.conf" -L "$IT_TMP/nocap/state" -R "$IT_TMP/nocap/run" >"$IT_TMP/nocap.out" 2>&1; then
    fail "encd started without CAP_NET_ADMIN"
fi
grep -q "needs CAP_NET_ADMIN" "$IT_TMP/nocap.out" || fail "no-capability message: $(cat "$IT_TMP/nocap.out")"
on gw2 ip link show enc0 >/dev/null 2>&1 || fail "the refused encd removed the running encd's enc0"
ok "without CAP_NET_ADMIN: $(grep -o 'encd needs CAP_NET_ADMIN.*' "$IT_TMP/nocap.out")"

on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 before the flood"
ok "tunnel up (and still up after the refused second encd)"

# --- ping flood, SIGKILL, restart ------------------------------------------------------
capture gw1 wan "$IT_TMP/wan.pcap"
on h1 ping -n -q -i 0.002 -c 2500 -W 1 198.18.2.20 >"$IT_TMP/flood.out" 2>&1 &
flood=$!
sleep 1.5
kill_at=$(date +%s.%N)
kill -KILL "$(encd_pid gw1)"
{ wait "$(encd_pid gw1)"; } 2>/dev/null || true    # reaped quietly (no "Killed" job notice)
! kill -0 "$(encd_pid gw1)" 2>/dev/null || fail "encd on gw1 survived SIGKILL"
sleep 1.5    # gw1 has no encd: its table stays, its queues have no reader
on gw1 nft list table inet encd >/dev/null 2>&1 || fail "the SIGKILLed encd's table is gone (traffic would pass in cleartext)"
restart_at=$(date +%s.%N)
mv "$IT_TMP/gw1-encd.log" "$IT_TMP/gw1-encd-killed.log"   # start_encd waits for a new "started" line
start_encd gw1 "$IT_TMP/gw1.conf"
wait $flood || true
on h1 ping -c 5 -i 0.2 -W 2 198.18.2.20 >"$IT_TMP/after.out" || fail "no traffic after the restart: $(tail -2 "$IT_TMP/after.out")"
sleep 0.3
stop_capture gw1 wan

sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$IT_TMP/flood.out")
got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/flood.out")
[[ -n $sent && -n $got ]] || fail "flood ping output: $(cat "$IT_TMP/flood.out")"
[[ $got -gt 0 && $got -lt $sent ]] || fail "flood: $got of $sent replies (expected some, and losses while gw1 had no encd)"
ok "flood: $got of $sent echo replies; the rest was lost while gw1 had no encd"
ok "traffic restored after the restart: 5 of 5 pings answered"

# No cleartext of the protected flow, and no IPv4 other than ESP, on the internet link.
clear=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'icmp and net 198.18.0.0/16' 2>/dev/null | wc -l)
other=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'ip and not esp' 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear cleartext ICMP packets between the sites on the internet link (kill at $kill_at, restart at $restart_at):
$(tcpdump -n -tt -e -v -r "$IT_TMP/wan.pcap" 'icmp and net 198.18.0.0/16' 2>/dev/null | head -10)"
[[ $other -eq 0 ]] || fail "$other non-ESP IPv4 packets on the internet link: $(tcpdump -n -r "$IT_TMP/wan.pcap" 'ip and not esp' 2>/dev/null | head -3)"

# gw1's ESP (SPI 0x1000) as "time seq", in capture order.
tcpdump -n -tt -r "$IT_TMP/wan.pcap" 'esp and src 192.0.2.1' 2>/dev/null \
    | sed -nE 's/^([0-9.]+) .*ESP\(spi=0x00001000,seq=(0x[0-9a-f]+)\).*/\1 \2/p' >"$IT_TMP/gw1-seq.txt"
read -r before during after last_before first_after increasing < <(python3 - "$kill_at" "$restart_at" "$IT_TMP/gw1-seq.txt" <<'PY'
import sys
kill_at, restart_at = float(sys.argv[1]), float(sys.argv[2])
rows = [(float(t), int(s, 16)) for t, s in (l.split() for l in open(sys.argv[3]))]
before = [s for t, s in rows if t < kill_at]
during = [s for t, s in rows if kill_at + 0.05 <= t < restart_at]
after = [s for t, s in rows if t >= restart_at]
seqs = [s for _, s in rows]
increasing = int(all(b > a for a, b in zip(seqs, seqs[1:])))
print(len(before), len(during), len(after), max(before, default=-1), after[0] if after else -1, increasing)
PY
)
[[ $before -gt 100 ]] || fail "only $before ESP packets from gw1 before the kill"
[[ $during -eq 0 ]] || fail "$during ESP packets from gw1 while it had no encd"
[[ $after -gt 5 ]] || fail "only $after ESP packets from gw1 after the restart"
[[ $first_after -gt $last_before ]] || fail "gw1's first sequence number after the restart ($first_after) is not above the last before the kill ($last_before)"
[[ $increasing -eq 1 ]] || fail "gw1's ESP sequence numbers did not only go up"
ok "internet link: no cleartext; gw1 sent $before ESP before the kill, none while dead, $after after"
ok "gw1's sequence numbers: last before the kill $last_before, first after the restart $first_after, increasing throughout"
! grep -qi "replay" "$IT_TMP/gw2-encd.log" || fail "gw2 reported replayed packets: $(grep -i replay "$IT_TMP/gw2-encd.log" | head -2)"
ok "gw2 (replay window 64) reported no replays"

# --- hung and overloaded: SIGSTOP, a flood larger than the queue, SIGCONT -------------
overflow() {
    on gw1 "$ENCSTAT" -S "$IT_TMP/gw1/run/encd.sock" -s -p enc -j \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["queue_overflow"])'
}
overflow_before=$(overflow)
capture gw1 wan "$IT_TMP/stopped.pcap"
kill -STOP "$(encd_pid gw1)"
# 6000 UDP datagrams at once: more than the queue holds (4096) while nobody reads it.
on h1 python3 - <<'PY' || fail "UDP flood from h1"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(6000):
    s.sendto(b"flood %d" % i, ("198.18.2.20", 9))
PY
sleep 1
dropped=$(awk '$1 == 0 { print $6 }' <(on gw1 cat /proc/net/netfilter/nfnetlink_queue))
kill -CONT "$(encd_pid gw1)"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "no traffic after SIGCONT"
stop_capture gw1 wan
[[ ${dropped:-0} -gt 0 ]] || fail "the flood did not overflow gw1's [X] queue: $(on gw1 cat /proc/net/netfilter/nfnetlink_queue)"
clear=$(tcpdump -n -r "$IT_TMP/stopped.pcap" 'ip and not esp' 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear non-ESP packets on the internet link while encd was stopped: $(tcpdump -n -r "$IT_TMP/stopped.pcap" 'ip and not esp' 2>/dev/null | head -3)"
overflow_after=$(overflow)
[[ $((overflow_after - overflow_before)) -ge $dropped ]] || fail "encstat's queue_overflow went from $overflow_before to $overflow_after, the kernel dropped $dropped"
ok "encd stopped (SIGSTOP) under a 6000-datagram flood: the kernel dropped $dropped from the full queue, none left in cleartext, encstat counts them (queue_overflow $overflow_before -> $overflow_after); after SIGCONT traffic flows"

# --- clean stop: the table stays, failing closed; encd -U removes it ---------------------
for gw in gw1 gw2; do
    stop_encd $gw
    grep -q "stopped: table inet encd left in place" "$IT_TMP/$gw-encd.log" || fail "$gw: encd logged no stop"
    on $gw nft list table inet encd >/dev/null 2>&1 || fail "$gw: SIGTERM removed the table (require traffic would leave in cleartext)"
    ! on $gw ip link show enc0 >/dev/null 2>&1 || fail "$gw: enc0 left after SIGTERM"
done
rc=0; on h1 ping -c 2 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 || rc=$?
[[ $rc -ne 0 ]] || fail "h1 reached h2 with both encd stopped"
ok "after SIGTERM: the table stays and traffic of the flows is dropped; enc0 is gone"
for gw in gw1 gw2; do
    on $gw "$ENCD" -U -L "$IT_TMP/$gw/state" -R "$IT_TMP/$gw/run" >"$IT_TMP/$gw-unload.out" 2>&1 || fail "$gw: encd -U: $(cat "$IT_TMP/$gw-unload.out")"
    tables=$(on $gw nft list tables)
    [[ $tables != *"inet encd"* ]] || fail "$gw: table inet encd left after encd -U"
    rules=$(on $gw ip rule show; on $gw ip -6 rule show)
    ! grep -qE "lookup (3660|0xe4c)|fwmark 0x20000|fwmark 0xffd0000" <<<"$rules" || fail "$gw: policy rule left: $(grep -E '3660|0x20000|0xffd0000' <<<"$rules")"
    routes=$(on $gw ip route show table 3660 2>/dev/null; on $gw ip -6 route show table 3660 2>/dev/null)
    [[ -z $routes ]] || fail "$gw: routes left in table 3660: $routes"
    ok "$gw: after encd -U no table inet encd, no policy rule for table 3660, no route in 3660"
done
