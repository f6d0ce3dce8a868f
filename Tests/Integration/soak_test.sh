#!/usr/bin/env bash
# Soak (issue #7): mixed traffic through h1 — gw1 — internet — gw2 — h2 for
# $SOAK_SECONDS (120 in the test run; an hour by hand: SOAK_SECONDS=3600), while
#   - every 15 s the SA pair is rotated through encctl, without a gap: new inbound
#     halves first, then the new outbound halves (a lower SPI wins), then the old pair
#     is deleted; each new pair has a soft lifetime that expires during its turn;
#   - a spare SA with a 20 s hard lifetime expires and is removed;
#   - a ping runs at 50 packets/s, 1 MB TCP transfers repeat, and 64-byte UDP
#     (1000/s) flows.
# Asserts zero unexpected drops (every ping answered but those in flight at the very
# end, every TCP transfer intact, no drop counter of encd's moved on either gateway
# besides the UDP sink's port-unreachables never counted by encd) and flat memory:
# each encd's resident set at the end within 16 MiB of what it was after the first
# rotation (start, peak and end printed).
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
SOAK_SECONDS=${SOAK_SECONDS:-120}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
key() { printf '0x%08x%s' "$1" "$(for _ in $(seq 16); do printf '%02x' "$2"; done)"; }   # 20 bytes, distinct per (n, b)
for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x9000:0x9001 enc aes-128-gcm enckey $(key 1 17):$(key 1 34)
esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x7777 enc aes-128-gcm enckey $(key 99 51) lifetime hard seconds 20
CONF
    start_encd $gw "$IT_TMP/$gw.conf"
done
ctl() { on "$1" "$ENCCTL" -S "$IT_TMP/$1/run/encd.sock" "${@:2}"; }
drops() {   # the sum of every drop counter encd has, on gateway $1
    on "$1" "$ENCSTAT" -S "$IT_TMP/$1/run/encd.sock" -j | python3 -c '
import json, sys
r = json.load(sys.stdin)
drops = [k for k in r["counters"] if any(w in k for w in ("dropped", "failed", "short", "no_sa", "invalid", "replay",
         "mismatch", "padding", "wrap", "too_big", "full", "pending", "malformed", "overflow", "closed", "without_sa"))]
print(sum(r["counters"][k] for k in drops), " ".join("%s=%d" % (k, r["counters"][k]) for k in drops if r["counters"][k]))'
}
rss() { awk '/VmRSS/ { print $2 }' "/proc/$(encd_pid "$1")/status"; }

# An SA statement for one direction, in gw1 -> gw2 terms: half SPI KEYSEED SRC DST
half() { echo "esp tunnel from $3 to $4 spi $(printf '0x%x' "$1") enc aes-128-gcm enckey $(key "$1" "$2") lifetime soft seconds 10 lifetime hard seconds 3600"; }
rotate() {   # rotate N: SPI pair 0x8000-2N (gw1->gw2) and +1 (gw2->gw1); old pair OLD
    local n=$1 out=$((0x8000 - 2 * $1)) old=$2
    local back=$((out + 1))
    half $out 17 192.0.2.1 192.0.2.2 >"$IT_TMP/out.conf"
    half $back 34 192.0.2.2 192.0.2.1 >"$IT_TMP/back.conf"
    ctl gw2 -f "$IT_TMP/out.conf" >/dev/null && ctl gw1 -f "$IT_TMP/back.conf" >/dev/null || fail "rotation $n: inbound halves"
    ctl gw1 -f "$IT_TMP/out.conf" >/dev/null && ctl gw2 -f "$IT_TMP/back.conf" >/dev/null || fail "rotation $n: outbound halves"
    sleep 1
    printf 'esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x%x:0x%x enc aes-128-gcm enckey %s:%s\n' \
        "$old" "$((old + 1))" "$(key 1 1)" "$(key 2 2)" >"$IT_TMP/old.conf"
    for gw in gw1 gw2; do ctl $gw -d -f "$IT_TMP/old.conf" >"$IT_TMP/del.out" 2>&1 || fail "rotation $n: delete the old pair on $gw: $(cat "$IT_TMP/del.out")"; done
}

on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "tunnel"
d1_before=$(drops gw1 | cut -d' ' -f1); d2_before=$(drops gw2 | cut -d' ' -f1)
pings=$(( SOAK_SECONDS * 50 ))
on h1 ping -n -q -i 0.02 -c "$pings" -W 2 198.18.2.20 >"$IT_TMP/ping.out" 2>&1 &
ping_pid=$!
# Not through `on`: $! of a backgrounded function is its subshell's, not python's.
ip netns exec "$IT_ID-h2" python3 -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.2.20", 9999))
while True: s.recv(2048)' >/dev/null 2>&1 &
IT_PIDS+=("$!")
ip netns exec "$IT_ID-h1" python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); end = time.time() + $SOAK_SECONDS
while time.time() < end:
    for _ in range(10): s.sendto(b'x' * 64, ('198.18.2.20', 9999))
    time.sleep(0.01)" &
udp_pid=$!
IT_PIDS+=("$udp_pid")

start=$(date +%s); old=$((0x9000)); n=0; transfers=0
declare -A rss_start rss_peak
while (( $(date +%s) - start < SOAK_SECONDS - 5 )); do
    n=$((n + 1))
    rotate $n $old
    old=$((0x8000 - 2 * n))
    if [[ $n -eq 1 ]]; then for gw in gw1 gw2; do rss_start[$gw]=$(rss $gw); rss_peak[$gw]=${rss_start[$gw]}; done; fi
    tcp_transfer h1 h2 198.18.2.20 1000000; transfers=$((transfers + 1))
    for gw in gw1 gw2; do r=$(rss $gw); (( r > rss_peak[$gw] )) && rss_peak[$gw]=$r; done
    while (( $(date +%s) - start < n * 15 && $(date +%s) - start < SOAK_SECONDS - 5 )); do sleep 1; done
done
wait $udp_pid || true
wait $ping_pid || true
sent=$(sed -nE 's/^([0-9]+) packets transmitted.*/\1/p' "$IT_TMP/ping.out")
got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/ping.out")
grep -q "SA hard lifetime\|hard lifetime" "$IT_TMP/gw1-encd.log" || fail "the spare SA's hard lifetime did not expire"
read -r d1_after d1_detail < <(drops gw1); read -r d2_after d2_detail < <(drops gw2)
for gw in gw1 gw2; do
    end_rss=$(rss $gw)
    echo "$gw RSS (KiB): after the first rotation ${rss_start[$gw]}, peak ${rss_peak[$gw]}, end $end_rss"
    (( end_rss - rss_start[$gw] < 16384 )) || fail "$gw: resident set grew from ${rss_start[$gw]} to $end_rss KiB"
done
[[ $((d1_after - d1_before)) -eq 0 ]] || fail "gw1 dropped $((d1_after - d1_before)) packets: $d1_detail"
[[ $((d2_after - d2_before)) -eq 0 ]] || fail "gw2 dropped $((d2_after - d2_before)) packets: $d2_detail"
[[ -n $sent && $((sent - got)) -le 2 ]] || fail "ping: $got of $sent answered"
ok "${SOAK_SECONDS}s soak: $n SA rotations, $transfers TCP transfers of 1 MB intact, ping $got of $sent, UDP at 1000/s, no drop counted on either gateway, memory flat"
