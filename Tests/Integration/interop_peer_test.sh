#!/usr/bin/env bash
# Interop on the wire with an ESP implementation we did not write: gw1 runs encd, its
# peer gw2 is scapy (Tests/Integration/scapy_gateway.py), which decrypts what encd
# sends, answers ICMP echo requests itself and encrypts the replies through its own
# SAs. gw2's kernel never handles the ESP: an nft input rule there drops it (scapy
# reads it from an AF_PACKET socket, before netfilter), and 198.18.2.20 is no address
# of any namespace.
#   AES-128-GCM, tunnel mode:         h1 (198.18.1.10) — gw1 — scapy, answering for 198.18.2.20
#   AES-128-CBC + HMAC-SHA1, transport: gw1 (198.51.100.1) pings scapy (198.51.100.2)
source "$(dirname "$0")/lib.sh"
N=10

ns h1; ns gw1; ns gw2
link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
link gw1 wan 192.0.2.1/24,198.51.100.1/24 gw2 wan 192.0.2.2/24,198.51.100.2/24
router gw1
on h1 ip route add default via 198.18.1.1
on gw1 ip route add default via 192.0.2.2

SHA1_A=0x$(printf '55%.0s' $(seq 20)); SHA1_B=0x$(printf '66%.0s' $(seq 20))
cat >"$IT_TMP/gw1.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 enc aes-128-gcm enckey $KEY_A:$KEY_B

flow esp from 198.51.100.1 to 198.51.100.2
esp transport from 198.51.100.1 to 198.51.100.2 spi 0x3000:0x3001 replay 64 auth hmac-sha1 enc aes-128 \\
    authkey $SHA1_A:$SHA1_B enckey $CBC_A:$CBC_B
CONF
# scapy's side: "in" is what encd sends (encd's first SPI and key), "out" what it answers.
cat >"$IT_TMP/scapy.json" <<JSON
{"iface": "wan", "answer": ["198.18.2.20", "198.51.100.2"],
 "pairs": [
  {"mode": "tunnel", "local": "192.0.2.2", "peer": "192.0.2.1",
   "in":  {"spi": 4096, "enc": "aes-128-gcm", "enc_key": "$KEY_A"},
   "out": {"spi": 4097, "enc": "aes-128-gcm", "enc_key": "$KEY_B"}},
  {"mode": "transport", "local": "198.51.100.2", "peer": "198.51.100.1",
   "in":  {"spi": 12288, "enc": "aes-128", "enc_key": "$CBC_A", "auth": "hmac-sha1", "auth_key": "$SHA1_A"},
   "out": {"spi": 12289, "enc": "aes-128", "enc_key": "$CBC_B", "auth": "hmac-sha1", "auth_key": "$SHA1_B"}}
 ]}
JSON

# gw2's kernel must not take the ESP: dropped (and counted) at its input hook.
on gw2 nft -f - <<'NFT'
table inet scapygw {
    chain input { type filter hook input priority 0; policy accept;
        meta l4proto esp counter drop comment "esp-to-kernel"
    }
}
NFT

ip netns exec "$IT_ID-gw2" python3 "$(dirname "$0")/scapy_gateway.py" "$IT_TMP/scapy.json" \
    >"$IT_TMP/scapy.out" 2>"$IT_TMP/scapy.log" &
scapy_pid=$!
IT_PIDS+=("$scapy_pid")
for _ in $(seq 150); do grep -q "^ready" "$IT_TMP/scapy.out" 2>/dev/null && break; kill -0 $scapy_pid 2>/dev/null || break; sleep 0.1; done
grep -q "^ready" "$IT_TMP/scapy.out" || fail "scapy gateway did not start: $(tail -5 "$IT_TMP/scapy.log")"

start_encd gw1 "$IT_TMP/gw1.conf"
capture gw1 wan "$IT_TMP/wan.pcap"

# scapy rebuilds each reply from Python, so allow it a generous deadline per packet.
on h1 ping -n -c $N -i 0.2 -W 5 198.18.2.20 >"$IT_TMP/ping-tunnel.out" || true
grep -q "$N packets transmitted, $N received" "$IT_TMP/ping-tunnel.out" \
    || fail "tunnel (AES-GCM): $(grep transmitted "$IT_TMP/ping-tunnel.out")"
ok "AES-128-GCM tunnel: h1 -> 198.18.2.20 answered by scapy, $N of $N"

on gw1 ping -n -c $N -i 0.2 -W 5 198.51.100.2 >"$IT_TMP/ping-transport.out" || true
grep -q "$N packets transmitted, $N received" "$IT_TMP/ping-transport.out" \
    || fail "transport (AES-CBC+HMAC-SHA1): $(grep transmitted "$IT_TMP/ping-transport.out")"
ok "AES-128-CBC+HMAC-SHA1 transport: gw1 -> 198.51.100.2 answered by scapy, $N of $N"

sleep 0.3
stop_capture gw1 wan
kill -TERM $scapy_pid
wait $scapy_pid || fail "scapy gateway exited with an error: $(tail -5 "$IT_TMP/scapy.log")"
report=$(tail -1 "$IT_TMP/scapy.out")
echo "scapy: $report"

# What scapy saw: every ESP packet verified and decrypted, every request answered once
# (encd never retransmits, so 2N), sequence numbers from 1 upwards.
python3 - "$report" "$N" <<'PY' || fail "scapy's counters disagree: $report"
import json, sys
r, n = json.loads(sys.argv[1]), int(sys.argv[2])
c, s = r["counts"], r["sequences"]
assert c["icv_failed"] == 0 and c["unknown_spi"] == 0, c
assert c["esp_in"] == c["decrypted"] == c["echo_answered"] == 2 * n, c
for spi in ("0x00001000", "0x00003000"):
    assert s[spi]["first"] == 1 and s[spi]["last"] == n and s[spi]["increasing"], (spi, s[spi])
PY
ok "scapy decrypted and answered $((2 * N)) ESP packets, no ICV failure, encd's sequence numbers 1..$N on both SAs"

dropped=$(nft_counter gw2 scapygw input esp-to-kernel)
[[ ${dropped:-0} -eq $((2 * N)) ]] || fail "gw2's kernel saw ${dropped:-0} ESP packets, expected $((2 * N)) (all dropped)"
ok "gw2's kernel dropped all $dropped ESP packets it got: only scapy answered"

# The wire: only ESP on either SA pair, in both directions, and no cleartext ICMP.
for spi in 0x00001000 0x00001001 0x00003000 0x00003001; do
    n=$(tcpdump -n -r "$IT_TMP/wan.pcap" esp 2>/dev/null | grep -c "spi=$spi," || true)
    [[ $n -eq $N ]] || fail "$n ESP packets with SPI $spi on the link, expected $N"
done
clear=$(tcpdump -n -r "$IT_TMP/wan.pcap" icmp 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear cleartext ICMP packets on the link"
ok "link: $N ESP packets on each of SPIs 0x1000, 0x1001, 0x3000, 0x3001; no cleartext ICMP"
