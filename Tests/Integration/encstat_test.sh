#!/usr/bin/env bash
# encstat against two running encd gateways: h1 — gw1 — internet — gw2 — h2, ESP tunnel
# with AES-CBC + HMAC-SHA2-256. Counters must match the traffic exactly:
#   - N pings h1 → h2: exactly N input and N output ESP packets on each gateway;
#   - one of gw1's ESP packets, captured on the internet link, given a fresh sequence
#     number and a flipped ciphertext byte and sent again from gw1's side: gw2 counts
#     exactly "1 packet that failed verification received";
#   - the same captured packet sent again unmodified: "1 possibly replayed packet received";
# then -r and -a show the flows and SAs, -p enc the queues, -w prints deltas, -j is
# read by python's json and -o prometheus by prometheus_client; no output shows a key.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
[[ -x $ENCSTAT ]] || fail "no encstat at $ENCSTAT (swift build --product encstat)"
N=5

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 auth hmac-sha2-256 enc aes-128 \\
    authkey $AUTH_A:$AUTH_B enckey $CBC_A:$CBC_B
CONF
    start_encd $gw "$IT_TMP/$gw.conf"
done

# encstat GW ARGS...: encstat in GW's namespace on GW's control socket; every output
# is also kept to check for keys at the end.
encstat() {
    local gw=$1; shift
    on "$gw" "$ENCSTAT" -S "$IT_TMP/$gw/run/encd.sock" "$@" | tee -a "$IT_TMP/all-output"
}
# esp_line GW TEXT: the value of the `encstat -s -p esp` line ending in TEXT.
esp_value() {
    encstat "$1" -s -p esp | awk -v t="$2" '{ v = $1; $1 = ""; sub(/^ /, ""); if ($0 == t) print v }'
}
expect_esp() {  # expect_esp GW VALUE TEXT
    local got; got=$(esp_value "$1" "$3")
    [[ "$got" == "$2" ]] || { encstat "$1" -s -p esp >&2; fail "$1: \"$3\" is ${got:-missing}, expected $2"; }
}

for gw in gw1 gw2; do
    [[ "$(encstat $gw -ss -p esp)" == "esp:" ]] || fail "$gw: counters not zero at start"
done
ok "both gateways start with every ESP counter at zero (-ss prints only the heading)"

# 1. N pings: N ESP packets each way on the internet link.
capture gw1 wan "$IT_TMP/wan.pcap"
out=$(on h1 ping -c $N -i 0.2 -W 2 198.18.2.20) || fail "ping h1 -> h2"
grep -q "$N received" <<<"$out" || fail "ping: $out"
stop_capture gw1 wan
for gw in gw1 gw2; do
    expect_esp $gw $N "input ESP packets"
    expect_esp $gw $N "output ESP packets"
    expect_esp $gw 0 "packets that failed verification received"
    expect_esp $gw 0 "possibly replayed packets received"
done
ok "$N pings: exactly $N input and $N output ESP packets on each gateway"

# 2. A tampered packet from gw1's side: fresh sequence number (so it passes the replay
# pre-check), one ciphertext byte flipped; the ICV check at gw2 must refuse it.
on gw1 python3 - "$IT_TMP/wan.pcap" <<'PY' || fail "could not send the tampered packet"
import struct, sys
from scapy.all import rdpcap, sendp, Ether, IP
frames = [f for f in rdpcap(sys.argv[1]) if IP in f and f[IP].proto == 50 and f[IP].src == "192.0.2.1"]
raw = bytearray(bytes(frames[0]))
esp = 14 + (raw[14] & 0x0f) * 4
struct.pack_into("!I", raw, esp + 4, 1000)  # sequence number
raw[esp + 8 + 16 + 4] ^= 0x01               # inside the ciphertext, after the IV
sendp(Ether(bytes(raw)), iface="wan", verbose=False)
PY
sleep 0.5
expect_esp gw2 1 "packet that failed verification received"
expect_esp gw2 $((N + 1)) "input ESP packets"
expect_esp gw2 0 "possibly replayed packets received"
ok "gw2: a tampered packet counts exactly 1 packet that failed verification"

# 3. The captured packet again, unmodified: its sequence number was accepted already.
on gw1 python3 - "$IT_TMP/wan.pcap" <<'PY' || fail "could not replay the packet"
import sys
from scapy.all import rdpcap, sendp, IP
frames = [f for f in rdpcap(sys.argv[1]) if IP in f and f[IP].proto == 50 and f[IP].src == "192.0.2.1"]
sendp(frames[0], iface="wan", verbose=False)
PY
sleep 0.5
expect_esp gw2 1 "possibly replayed packet received"
expect_esp gw2 1 "packet that failed verification received"
expect_esp gw2 $((N + 2)) "input ESP packets"
ipsec=$(encstat gw2 -ss -p ipsec)
want=$(printf 'ipsec:\n\t%d input IPsec packets\n\t%d output IPsec packets\n' $((N + 2)) $N)
[[ "$ipsec" == "$want"* ]] || fail "gw2 ipsec group: $ipsec"
grep -qx $'\t2 packets dropped on input' <<<"$ipsec" || fail "gw2 ipsec idrops: $ipsec"
ok "gw2: the same packet replayed counts exactly 1 possibly replayed packet; ipsec group agrees"

# 4. Flows as netstat -rn -f encap, SAs with per-SA figures.
want=$(cat <<'EOF'
Encap:
Source             Port  Destination        Port  Proto SA(Address/Proto/Type/Direction)
198.18.1/24        0     198.18.2/24        0     0     192.0.2.2/esp/require/out
198.18.2/24        0     198.18.1/24        0     0     192.0.2.2/esp/require/in
EOF
)
got=$(encstat gw1 -rn)
[[ "$got" == "$want" ]] || fail "gw1 -rn:"$'\n'"$got"
ok "gw1 -rn prints the flows as netstat -rn -f encap"
sa_in=$(encstat gw2 -a | awk '$3 == "0x00001000"')
read -r proto dir spi src dst state pkts bytes drops seq window _ <<<"$sa_in"
[[ "$proto $dir $src $dst $state $pkts $drops $seq $window" == "esp in 192.0.2.1 192.0.2.2 mature $N 2 $N 64" ]] \
    || fail "gw2 -a inbound SA: $sa_in"
sa_out=$(encstat gw2 -a | awk '$3 == "0x00001001"')
read -r proto dir spi src dst state pkts bytes drops seq window _ <<<"$sa_out"
[[ "$dir $pkts $drops $seq" == "out $N 0 $((N + 1))" ]] || fail "gw2 -a outbound SA: $sa_out"
ok "gw2 -a: inbound SA $N packets, 2 drops, replay window top $N; outbound SA $N packets, next sequence $((N + 1))"

# 5. The enc group: enc0's cleartext and encd's queues.
enc=$(encstat gw2 -p enc)
grep -qx $'\t'"$N packets in on enc0" <<<"$enc" || fail "gw2 enc0 input: $enc"
# Out on enc0: the N replies, plus whatever the kernel itself sends on enc0 (the MLD
# reports of its IPv6 link-local address when it comes up), which no flow covers and
# encd drops closed. Every packet out on enc0 is either protected or dropped closed.
enc_out=$(awk '$2 == "packets" && $3 == "out" && $5 == "enc0" { print $1 } $2 == "packet" && $3 == "out" { print $1 }' <<<"$enc")
closed=$(awk '/dropped closed/ { print $1 }' <<<"$enc")
[[ -n $enc_out && -n $closed && $((enc_out - closed)) -eq $N ]] || fail "gw2 enc0 output $enc_out, dropped closed $closed: $enc"
for q in "queue 0 (spd):" "queue 1 (ipsec-out):" "queue 2 (ipsec-in):" "queue 3 (cleartext):"; do
    grep -qx $'\t'"$q" <<<"$enc" || fail "gw2 -p enc lacks $q: $enc"
done
grep -qx $'\t\t0 packets dropped because the queue was full (queue_dropped)' <<<"$enc" || fail "queue_dropped: $enc"
ok "gw2 -p enc: $N packets in on enc0, $enc_out out of which $closed dropped closed; queues 0-3 with the kernel's drop figures"

# 6. -w: header, totals, then a delta line with nothing new.
w=$(encstat gw2 -w 1 -c 2)
mapfile -t wl <<<"$w"
[[ ${#wl[@]} -eq 3 && ${wl[0]} == *ipkts*ibytes*opkts*obytes*idrops*odrops* ]] || fail "-w output: $w"
read -r a b c d e f <<<"${wl[1]}"; [[ "$a $c $e" == "$((N + 2)) $N 2" ]] || fail "-w totals: ${wl[1]}"
read -r a b c d e f <<<"${wl[2]}"; [[ "$a $b $c $d $e $f" == "0 0 0 0 0 0" ]] || fail "-w delta: ${wl[2]}"
ok "-w 1 -c 2: totals, then a zero delta"

# 7. JSON through python's json, Prometheus through prometheus_client.
encstat gw2 -j -s -r -a | python3 -c '
import json, sys
d = json.load(sys.stdin)
n = int(sys.argv[1])
esp = d["statistics"]["esp"]
assert (esp["input"], esp["output"], esp["badauth"], esp["replay"]) == (n + 2, n, 1, 1), esp
assert d["counters"]["esp_auth_failed"] == 1 and d["counters"]["esp_replay"] == 1, d["counters"]
assert len(d["flows"]) == 2 and len(d["sas"]) == 2, d
assert {q["role"] for q in d["queues"]} == {"spd", "ipsec-out", "ipsec-in", "cleartext"}, d["queues"]
' $N || fail "gw2 -j"
ok "gw2 -j -s -r -a parses with python json and carries the same counts"
encstat gw2 -o prometheus | python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
n = int(sys.argv[1])
f = {m.name: m for m in text_string_to_metric_families(sys.stdin.read())}
v = lambda name: f[name].samples[0].value
assert v("encd_esp_input_packets") == n + 2 and v("encd_esp_output_packets") == n
drops = {s.labels["reason"]: s.value for s in f["encd_drops"].samples}
assert drops["esp_auth_failed"] == 1 and drops["esp_replay"] == 1, drops
esp_drops = [s for s in f["encd_drops"].samples if s.labels["group"] == "esp" and s.value]
assert len(esp_drops) == 2 and all(s.labels["direction"] == "in" for s in esp_drops), esp_drops
sa = [s for s in f["encd_sa_packets"].samples if s.labels["spi"] == "0x00001000"][0]
assert sa.labels == {"spi": "0x00001000", "proto": "esp", "direction": "in", "peer": "192.0.2.1"} and sa.value == n, sa
assert len(f["encd_queue_dropped"].samples) == 4
' $N || fail "gw2 -o prometheus"
ok "gw2 -o prometheus parses with prometheus_client; drops, SA and queue metrics as expected"

# 8. No key in anything encstat printed.
encstat gw1 -s -r -a -j >/dev/null; encstat gw1 -o prometheus >/dev/null
for k in "$AUTH_A" "$AUTH_B" "$CBC_A" "$CBC_B"; do
    hex=${k#0x}
    ! grep -qi "${hex:0:16}" "$IT_TMP/all-output" || fail "a key appears in encstat output"
done
! grep -qiE "authkey|enckey" "$IT_TMP/all-output" || fail "key clauses appear in encstat output"
ok "no key in $(wc -l <"$IT_TMP/all-output") lines of encstat output"
