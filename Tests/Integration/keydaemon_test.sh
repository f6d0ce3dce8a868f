#!/usr/bin/env bash
# What a key daemon (encd-iked) does through the control socket, played by the test:
# h1 — gw1 — gw2 — h2, encd on both gateways with a configuration that names none of
# this tunnel. Each side reserves its inbound SPI (getspi), both add a CHILD SA pair and
# its require flows (add, owner "it-keyd", child 1); pings and TCP pass as ESP with
# those SPIs. A rekey while h1 pings every 50 ms: new inbound SAs on both sides, then
# the new outbound ones (the child switches at once), then the old pair removed — no
# ping lost, the wire moves to the new SPI. SIGHUP with a changed file keeps the
# negotiated SAs. Removing the SAs leaves the require flows dropping (no cleartext on
# the wire); the sequence state file forgets every removed SA. A NAT-T pair moved by
# update to another peer port and back keeps counting; no key in any log.
source "$(dirname "$0")/lib.sh"

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
CTL_PY=$(dirname "$0")/encd_ctl.py
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
for gw in gw1 gw2; do
    echo "# nothing here: the tunnel comes from the key daemon" >"$IT_TMP/$gw.conf"
    start_encd $gw "$IT_TMP/$gw.conf"
done
ctl() { local gw=$1; shift; on "$gw" python3 "$CTL_PY" "$IT_TMP/$gw/run/encd.sock" "$@"; }
me() { [[ $1 == gw1 ]] && echo 1 || echo 2; }
peer() { [[ $1 == gw1 ]] && echo 2 || echo 1; }

# getspi GW: an SPI for SAs towards GW (GW is their destination).
getspi() {
    ctl "$1" "{\"command\":\"getspi\",\"proto\":\"esp\",\"destination\":\"192.0.2.$(me "$1")\",\"source\":\"192.0.2.$(peer "$1")\"}" "r['spi']"
}
key() { od -An -tx1 -N20 /dev/urandom | tr -d ' \n'; }
# sa SRC DST SPI KEY: one SA entry of child 1 (AES-128-GCM).
sa() { echo "{\"proto\":\"esp\",\"source\":\"192.0.2.$1\",\"destination\":\"192.0.2.$2\",\"spi\":$3,\"enc\":\"aes-128-gcm\",\"encKey\":\"$4\",\"child\":1}"; }
flows() {
    local m; m=$(me "$1"); local p; p=$(peer "$1")
    echo "[{\"direction\":\"out\",\"source\":\"198.18.$m.0/24\",\"destination\":\"198.18.$p.0/24\",\"local\":\"192.0.2.$m\",\"peer\":\"192.0.2.$p\",\"child\":1},
           {\"direction\":\"in\",\"source\":\"198.18.$p.0/24\",\"destination\":\"198.18.$m.0/24\",\"local\":\"192.0.2.$m\",\"peer\":\"192.0.2.$p\",\"child\":1}]"
}
# add GW 'SAS JSON' ['FLOWS JSON']
add() {
    local r
    r=$(ctl "$1" "{\"command\":\"add\",\"owner\":\"it-keyd\",\"sas\":$2${3:+,\"flows\":$3}}" "r['ok'] or r['error']")
    [[ $r == True ]] || fail "add on $1: $r"
}
remove() {
    local r
    r=$(ctl "$1" "{\"command\":\"remove\",\"owner\":\"it-keyd\",$2}" "r['ok'] or r['error']")
    [[ $r == True ]] || fail "remove on $1: $r"
}
wire_spis() { tcpdump -n -r "$1" esp 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort -u | tr '\n' ' '; }
hex() { printf '0x%08x' "$1"; }
# spis SPI...: what wire_spis prints for exactly these SPIs.
spis() { local x; for x in "$@"; do echo "spi=$(hex "$x")"; done | sort -u | tr '\n' ' '; }

# --- first CHILD SA: each side picks the SPI it will receive on
S12=$(getspi gw2); S21=$(getspi gw1)
(( S12 >= 0x100 && S21 >= 0x100 )) || fail "getspi: $S12 $S21"
K12=$(key); K21=$(key)
for gw in gw1 gw2; do add $gw "[$(sa 1 2 "$S12" "$K12"), $(sa 2 1 "$S21" "$K21")]" "$(flows $gw)"; done
capture gw1 wan "$IT_TMP/first.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping through the key daemon's SAs"
tcp_transfer h1 h2 198.18.2.20 1000000
stop_capture gw1 wan
[[ $(wire_spis "$IT_TMP/first.pcap") == "$(spis "$S12" "$S21")" ]] \
    || fail "ESP on the wire: $(wire_spis "$IT_TMP/first.pcap"), want $(hex "$S12") and $(hex "$S21")"
grep -q " $(hex "$S12") " "$IT_TMP/gw1/state/sequences" || fail "the state file has no line for SA $(hex "$S12")"
ok "getspi and add: ping and 1 MB of TCP through the CHILD SA pair $(hex "$S12")/$(hex "$S21")"

owners=$(ctl gw1 '{"command":"show","what":"all"}' "sorted({(x.get('owner'), x.get('child')) for x in r['sas'] + r['flows']})")
[[ $owners == "[('it-keyd', 1)]" ]] || fail "show: owners $owners"
"$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -s sa -v | has "owner: it-keyd child 1" || fail "encctl -s sa -v names no owner"
idle=$(ctl gw1 '{"command":"show","what":"sa"}' "[x.get('idle') for x in r['sas']]")
[[ $idle =~ ^\[[0-9]+,\ [0-9]+\]$ ]] || fail "idle of used SAs: $idle"
ok "show and encctl -s sa -v report owner it-keyd, child 1 and idle"

# --- a rekey under traffic: inbound first on both sides, then outbound, then the old pair goes
on h1 ping -c 100 -i 0.05 -W 1 198.18.2.20 >"$IT_TMP/rekey-ping.out" 2>&1 &
pingpid=$!
sleep 1
N12=$(getspi gw2); N21=$(getspi gw1)
L12=$(key); L21=$(key)
add gw2 "[$(sa 1 2 "$N12" "$L12")]"; add gw1 "[$(sa 2 1 "$N21" "$L21")]"
sleep 0.5
capture gw1 wan "$IT_TMP/rekey.pcap"
add gw1 "[$(sa 1 2 "$N12" "$L12")]"; add gw2 "[$(sa 2 1 "$N21" "$L21")]"
sleep 0.5
for gw in gw1 gw2; do
    remove $gw "\"sas\":[{\"proto\":\"esp\",\"destination\":\"192.0.2.2\",\"spi\":$S12},{\"proto\":\"esp\",\"destination\":\"192.0.2.1\",\"spi\":$S21}]"
done
wait $pingpid || fail "pings lost during the rekey: $(tail -2 "$IT_TMP/rekey-ping.out")"
grep -q " 0% packet loss" "$IT_TMP/rekey-ping.out" || fail "rekey: $(tail -2 "$IT_TMP/rekey-ping.out")"
stop_capture gw1 wan
tail=$(tcpdump -n -r "$IT_TMP/rekey.pcap" esp 2>/dev/null | tail -4 | grep -o 'spi=0x[0-9a-f]*' | sort -u | tr '\n' ' ')
[[ $tail == "$(spis "$N12" "$N21")" ]] || fail "after the rekey the wire carries $tail"
left=$(ctl gw1 '{"command":"show","what":"sa"}' "sorted(x['spi'] for x in r['sas'])")
[[ $left == "$(python3 -c "print(sorted([$N12, $N21]))")" ]] || fail "SAs after the rekey: $left"
ok "rekey under a 50 ms ping: 100 of 100 answered, the wire moved to $(hex "$N12")/$(hex "$N21"), the old pair is gone"

# --- SIGHUP replaces the file's state only
echo "flow esp from 198.18.1.0/24 to 198.18.8.0/24 peer 192.0.2.8" >>"$IT_TMP/gw1.conf"
kill -HUP "$(cat "$IT_TMP/gw1/run/encd.pid")"
for _ in $(seq 50); do grep -q "encd: reloaded" "$IT_TMP/gw1-encd.log" && break; sleep 0.1; done
grep -q "encd: reloaded" "$IT_TMP/gw1-encd.log" || fail "SIGHUP: no reload"
[[ $(ctl gw1 '{"command":"show","what":"all"}' "(len(r['sas']), len(r['flows']))") == "(2, 4)" ]] || fail "SIGHUP dropped the key daemon's state"
on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after SIGHUP"
ok "SIGHUP applied the file and kept the key daemon's SAs and flows"

# --- the SAs go, the require flows stay: nothing passes, nothing in cleartext
capture gw1 wan "$IT_TMP/removed.pcap"
for gw in gw1 gw2; do
    remove $gw "\"sas\":[{\"proto\":\"esp\",\"destination\":\"192.0.2.2\",\"spi\":$N12},{\"proto\":\"esp\",\"destination\":\"192.0.2.1\",\"spi\":$N21}]"
done
on h1 ping -c 3 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "ping passed a require flow without SAs"
stop_capture gw1 wan
clear=$(tcpdump -n -r "$IT_TMP/removed.pcap" icmp 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear cleartext ICMP packets on the wire without SAs"
ok "SAs removed, require flows kept: pings dropped, no cleartext on the wire"

for gw in gw1 gw2; do remove $gw '"child":1'; done
[[ $(ctl gw1 '{"command":"show","what":"all"}' "(len(r['sas']), len(r['flows']))") == "(0, 2)" ]] || fail "remove by child"
for spi in "$S12" "$S21" "$N12" "$N21"; do
    grep -q " $(hex "$spi") " "$IT_TMP/gw1/state/sequences" && fail "the state file still holds SA $(hex "$spi")"
done
ok "remove by child took the flows; the state file forgot every removed SA"

# --- NAT-T: update moves the outbound SA to the peer's new port, keeping its state
T12=$(getspi gw2); T21=$(getspi gw1); M12=$(key); M21=$(key)
natsa() { sa "$@" | sed 's/"child":1}/"child":1,"udpencap":{"port":4500,"peerPort":4500}}/'; }
for gw in gw1 gw2; do add $gw "[$(natsa 1 2 "$T12" "$M12"), $(natsa 2 1 "$T21" "$M21")]" "$(flows $gw)"; done
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping through the NAT-T CHILD SA pair"
upd() {
    local r
    r=$(ctl gw1 "{\"command\":\"update\",\"owner\":\"it-keyd\",\"sas\":[{\"proto\":\"esp\",\"destination\":\"192.0.2.2\",\"spi\":$T12}],\"peerPort\":$1}" "r['ok'] or r['error']")
    [[ $r == True ]] || fail "update: $r"
}
capture gw1 wan "$IT_TMP/moved.pcap"
upd 4501
on h1 ping -c 2 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "gw2 answered ESP sent to port 4501"
stop_capture gw1 wan
moved=$(tcpdump -n -r "$IT_TMP/moved.pcap" 'src host 192.0.2.1 and udp dst port 4501' 2>/dev/null | wc -l)
(( moved >= 2 )) || fail "after update no ESP in UDP to port 4501 on the wire ($moved)"
upd 4500
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after moving back to port 4500"
seq=$(ctl gw1 '{"command":"show","what":"sa"}' "[x['sequence'] for x in r['sas'] if x['spi'] == $T12][0]")
(( seq > 8 )) || fail "the updated SA started again at sequence $seq"
[[ $(ctl gw2 '{"command":"counters"}' "r['counters']['esp_replay']") == 0 ]] || fail "gw2 saw replays after the update"
ok "update moved the NAT-T SA to port 4501 on the wire and back, its sequence numbers going on ($seq)"

for k in "$K12" "$K21" "$L12" "$L21" "$M12" "$M21"; do
    grep -qi "$k" "$IT_TMP"/gw*-encd.log && fail "a key in encd's log"
done
ok "no key in any log"
