#!/usr/bin/env bash
# Reload under traffic never reuses a sequence number (issue #7, defect 2):
#   h1 — gw1 — internet — gw2 — h2, an AES-GCM tunnel, a UDP flood h1 -> h2.
# While the flood runs, gw1's file is rewritten 25 times, each time changing only the
# SA pair's lifetime, and encd reloads it (SIGHUP): every reload replaces the SA
# objects (same SPI, same key). The replacement claims the SA's sequence space when it
# is committed, after which the old object can reserve nothing more, so it starts
# above every number the old one could still use. The capture of the internet link
# must show no (SPI, sequence number) twice, the numbers of each SPI only rising, and
# gw2 must report no replay.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

conf() {   # conf GW SECONDS
    local gw=$1 me peer
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 enc aes-128-gcm enckey $KEY_A:$KEY_B \\
    lifetime hard seconds $2
CONF
    chmod 600 "$IT_TMP/$gw.conf"
}
conf gw1 3600; conf gw2 3600
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "tunnel"

capture gw1 wan "$IT_TMP/wan.pcap"
on h1 python3 - <<'PY' &
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + 6
i = 0
while time.time() < end:
    s.sendto(b"x" * 64, ("198.18.2.20", 9))
    i += 1
    if i % 200 == 0:
        time.sleep(0.001)
PY
flood=$!
for i in $(seq 25); do
    conf gw1 $((3600 + i))
    kill -HUP "$(encd_pid gw1)"
    sleep 0.2
done
wait $flood
sleep 0.3
stop_capture gw1 wan
reloads=$(grep -c "reloaded" "$IT_TMP/gw1-encd.log" || true)
[[ $reloads -ge 20 ]] || fail "only $reloads reloads logged: $(tail -3 "$IT_TMP/gw1-encd.log")"

tcpdump -n -r "$IT_TMP/wan.pcap" 'esp and src 192.0.2.1' 2>/dev/null \
    | sed -nE 's/.*ESP\(spi=(0x[0-9a-f]+),seq=(0x[0-9a-f]+)\).*/\1 \2/p' >"$IT_TMP/seq.txt"
read -r total dups rising < <(python3 - "$IT_TMP/seq.txt" <<'PY'
import sys
rows = [tuple(l.split()) for l in open(sys.argv[1])]
seen, dups = set(), 0
last, rising = {}, 1
for spi, seq in rows:
    n = int(seq, 16)
    if (spi, n) in seen:
        dups += 1
    seen.add((spi, n))
    if spi in last and n <= last[spi]:
        rising = 0
    last[spi] = n
print(len(rows), dups, rising)
PY
)
[[ $total -gt 1000 ]] || fail "only $total ESP packets from gw1 captured"
[[ $dups -eq 0 ]] || fail "$dups (SPI, sequence) pairs appear twice among $total ESP packets"
[[ $rising -eq 1 ]] || fail "gw1's sequence numbers went down across a reload"
replays=$(on gw2 "$ENCSTAT" -S "$IT_TMP/gw2/run/encd.sock" -s -p esp | sed -nE 's/^\s*([0-9]+) possibly replayed packets? received/\1/p')
[[ ${replays:-0} -eq 0 ]] || fail "gw2 counted $replays replayed packets"
ok "$reloads reloads replacing the SA under a UDP flood: $total ESP packets from gw1, no (SPI, sequence) twice, only rising; gw2 saw no replay"
