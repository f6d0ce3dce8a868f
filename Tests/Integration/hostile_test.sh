#!/usr/bin/env bash
# Hostile traffic end to end (issue #7, "Hostile traffic end to end"):
#   h1 198.18.1.10 — gw1 192.0.2.1 — internet — 192.0.2.2 gw2 — h2 198.18.2.20
#                                             — 192.0.2.3 (a second peer, also in gw2's
#                                               namespace: the attacker's address)
# encd on both gateways; gw1 has
#   0x1000:0x1001  ESP tunnel with gw2 (AES-GCM, replay 64): sites 1 <-> 2 (real traffic)
#   0x3000:0x3001  ESP tunnel with 192.0.2.3 (AES-GCM, replay 64): sites 1 <-> 3
#   0x5000:0x5001  ESP tunnel with 192.0.2.3, udpencap (AES-GCM, replay 64), no flow of its own
#   0x2000:0x2001  AH tunnel with 192.0.2.3 (HMAC-SHA2-256, replay 64): sites 1 <-> 4
# Packets are forged in gw2's namespace (an AF_PACKET socket on its wan, straight to
# gw1's MAC: no netfilter, no encd on the way) with the test keys where a packet must
# be valid up to the point it is meant to fail. Each case asserts, from gw1's counters
# (encstat -j), the exact delta of its own counter and that no other counter moved
# (output-side traffic aside); a capture on gw1's lan and on enc0 shows that nothing
# refused before decryption reaches enc0 and nothing refused at all reaches the lan.
# Positive controls (the same builder, valid packets inside the flows) must reach h1,
# so every refusal is for the stated reason only. Then a flood of random ESP (and
# ESP-in-UDP) at the sender's full rate while TCP runs h1 -> h2: throughput with and
# without the flood is printed, the transfer must complete, encd must live and answer.
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
FLOOD_SECONDS=${FLOOD_SECONDS:-14}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
on gw2 ip addr add 192.0.2.3/24 dev wan nodad 2>/dev/null || on gw2 ip addr add 192.0.2.3/24 dev wan
KEY_E=0x$(printf '77%.0s' $(seq 20)); KEY_F=0x$(printf '88%.0s' $(seq 20))

cat >"$IT_TMP/gw1.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
flow esp from 198.18.1.0/24 to 198.18.3.0/24 local 192.0.2.1 peer 192.0.2.3
flow ah from 198.18.1.0/24 to 198.18.4.0/24 local 192.0.2.1 peer 192.0.2.3
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 enc aes-128-gcm enckey $KEY_A:$KEY_B
esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x3000:0x3001 replay 64 enc aes-128-gcm enckey $KEY_C:$KEY_D
esp tunnel from 192.0.2.1 to 192.0.2.3 spi 0x5000:0x5001 udpencap replay 64 enc aes-128-gcm enckey $KEY_E:$KEY_F
ah tunnel from 192.0.2.1 to 192.0.2.3 spi 0x2000:0x2001 replay 64 auth hmac-sha2-256 authkey $AUTH_A:$AUTH_B
CONF
cat >"$IT_TMP/gw2.conf" <<CONF
flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 replay 64 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
chmod 600 "$IT_TMP"/*.conf
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
SOCK1=$IT_TMP/gw1/run/encd.sock
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 through the tunnel"
ok "tunnel h1 <-> h2 up; gw1 also holds SAs with 192.0.2.3 (ESP, ESP udpencap, AH)"

GW1_MAC=$(on gw1 cat /sys/class/net/wan/address)

# The forger: forge.py GW1_MAC 'EXPR' sends the IPv4 packet(s) the Python expression
# EXPR builds (bytes, or a list of bytes), each as one frame from gw2's wan to gw1.
# forge.py GW1_MAC --flood SECONDS sends random ESP / ESP-in-UDP for SECONDS and
# prints "sent N frames in S s".
cat >"$IT_TMP/forge.py" <<'PY'
import os, random, socket, struct, sys, time, hmac, hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def a(x): return socket.inet_aton(x)

def ip(src, dst, proto, payload, ttl=64, ident=None, frag=0, total=None):
    ident = random.randrange(65536) if ident is None else ident
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(payload), ident, frag, ttl, proto, 0, a(src), a(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload

def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data

def inner(src, dst, dport, data=b"hostile"):
    return ip(src, dst, 17, udp(40000, dport, data))

def key(k): return bytes.fromhex(k[2:] if k.startswith("0x") else k)

def esp(spi, seq, k, payload, nh=4, pad=None, padlen=None, tamper=None):
    """RFC 4106 AES-GCM ESP (IV = the sequence number): SPI, seq, IV, ciphertext, ICV."""
    kb = key(k); aes, salt = kb[:-4], kb[-4:]
    if pad is None:
        pad = bytes(range(1, (-(len(payload) + 2)) % 4 + 1))
    pt = payload + bytes(pad) + bytes([len(pad) if padlen is None else padlen, nh])
    iv = struct.pack("!Q", seq or 0x1234)
    hdr = struct.pack("!II", spi, seq)
    ct = bytearray(AESGCM(aes).encrypt(salt + iv, pt, hdr))
    if tamper == "icv": ct[-1] ^= 1
    if tamper == "ct": ct[0] ^= 0x80
    return hdr + iv + bytes(ct)

def out(e, src="192.0.2.3", dst="192.0.2.1", encap=False, sport=4500):
    return ip(src, dst, 17, udp(sport, 4500, e)) if encap else ip(src, dst, 50, e)

def ah(spi, seq, k, payload, src="192.0.2.3", dst="192.0.2.1", nh=4, tamper=None, plen=5):
    """RFC 4302 AH, HMAC-SHA2-256-128, tunnel mode over IPv4 without options (the
    outer header's identification is the sequence number: the same call, the same bytes)."""
    total = 20 + 28 + len(payload)
    ident = seq & 0xffff
    hdr_zero = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0, 0, 51, 0, a(src), a(dst))
    ah0 = struct.pack("!BBHII", nh, plen, 0, spi, seq)
    icv = bytearray(hmac.new(key(k), hdr_zero + ah0 + bytes(16) + payload, hashlib.sha256).digest()[:16])
    if tamper == "icv": icv[0] ^= 1
    return ip(src, dst, 51, ah0 + bytes(icv) + payload, ident=ident)

KEYS = dict(kv.split("=") for kv in os.environ.get("FORGE_KEYS", "").split(",") if kv)

mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("wan", 0))
me = s.getsockname()[4]
eth = mac + me + b"\x08\x00"

if sys.argv[2] == "--flood":
    seconds = float(sys.argv[3])
    frames = []
    for i in range(4096):
        body = os.urandom(random.randrange(16, 1400))
        r = i % 8
        if r < 4:      # random SPI (no SA)
            e = body
        elif r < 6:    # the real tunnel's inbound SPI, random sequence number: ICV check
            e = struct.pack("!II", 0x1001, random.randrange(1, 2**32)) + body
        elif r < 7:    # the second peer's SPI
            e = struct.pack("!II", 0x3001, random.randrange(1, 2**32)) + body
        else:          # ESP in UDP, random SPI (never zero: that is IKE's marker)
            e = struct.pack("!I", random.randrange(1, 2**32)) + body
            frames.append(eth + out(e, src="192.0.2.3", encap=True))
            continue
        frames.append(eth + out(e, src=random.choice(["192.0.2.2", "192.0.2.3"])))
    n = 0
    start = time.time()
    end = start + seconds
    send = s.send
    while True:
        for f in frames[:512]:
            try:
                send(f)
            except OSError:
                pass
        n += 512
        frames.append(frames.pop(0))
        if time.time() >= end:
            break
    print("sent %d frames in %.1f s" % (n, time.time() - start))
    sys.exit(0)

pkts = eval(sys.argv[2])
for p in pkts if isinstance(pkts, list) else [pkts]:
    s.send(eth + p)
PY
export FORGE_KEYS="0x1001=$KEY_B,0x3001=$KEY_D,0x5001=$KEY_F,0x2001=$AUTH_B"
forge() { on gw2 python3 "$IT_TMP/forge.py" "$GW1_MAC" "$1"; }

# counters FILE: every counter of gw1 (esp, ah and enc groups) into FILE as JSON.
counters() {
    local g
    for g in esp ah enc; do on gw1 "$ENCSTAT" -S "$SOCK1" -s -p $g -j >"$IT_TMP/c-$g.json" || fail "encstat -p $g on gw1"; done
    python3 - "$IT_TMP"/c-{esp,ah,enc}.json >"$1" <<'PY'
import json, sys
d = {}
for f in sys.argv[1:]:
    d.update(json.load(open(f))["counters"])
print(json.dumps(d))
PY
}
# delta BEFORE AFTER: "name +n" for each counter that moved, one line each.
delta() {
    python3 - "$1" "$2" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k in sorted(b):
    if b[k] != a.get(k, 0):
        print("%s %d" % (k, b[k] - a.get(k, 0)))
PY
}
# Counters that output traffic moves (h1 answers the control packets): not looked at.
IGNORED='^(esp_output|esp_output_bytes|esp_udp_encap_output|ah_output|ah_output_bytes|enc_output_packets|enc_output_bytes|esp_input_bytes|ah_input_bytes|enc_input_bytes) '

# expect NAME 'EXPR' 'counter=n counter=n ...': sends EXPR; exactly the listed counters
# move, by exactly n (output-side traffic counters aside).
CASES=0
expect() {
    local name=$1 expr=$2 want=$3 first got wanted moved
    counters "$IT_TMP/before.json"
    forge "$expr" || fail "$name: forging failed"
    first=${want%% *}
    for _ in $(seq 30); do
        counters "$IT_TMP/after.json"
        got=$(delta "$IT_TMP/before.json" "$IT_TMP/after.json" | awk -v c="${first%=*}" '$1 == c { print $2 }')
        [[ ${got:-0} -ge ${first#*=} ]] && break
        sleep 0.1
    done
    sleep 0.4    # anything counted late (a second counter for the same packet) shows now
    counters "$IT_TMP/after.json"
    moved=$(delta "$IT_TMP/before.json" "$IT_TMP/after.json" | grep -vE "$IGNORED" | sort || true)
    wanted=$(tr ' ' '\n' <<<"$want" | sed 's/=/ /' | sort)
    [[ "$moved" == "$wanted" ]] || fail "$name: counters moved
$(sed 's/^/    /' <<<"${moved:-(none)}")
  expected
$(sed 's/^/    /' <<<"$wanted")"
    CASES=$((CASES + 1))
    ok "$name: $(tr '\n' ' ' <<<"$moved" | sed -E 's/ ([0-9]+) / +\1, /g; s/, $//')"
}

# Sequence numbers of the SAs the forger uses with their real keys.
S3=0; S5=0; S2=0

capture gw1 lan "$IT_TMP/lan.pcap"
capture gw1 enc0 "$IT_TMP/enc0.pcap"

# Inner packets are UDP to port 6xxx (positive controls: must reach h1) or 7xxx
# (hostile: must not); the port tells the cases apart in the captures.
H='198.18.1.10'
echo "== positive controls"
expect "valid ESP on the second peer's SA (site 3 -> h1)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 6001)))" \
    "esp_input=1 enc_input_packets=1"
expect "valid ESP-in-UDP on the udpencap SA (site 3 -> h1)" \
    "out(esp(0x5001, $((++S5)), KEYS['0x5001'], inner('198.18.3.3', '$H', 6002)), encap=True)" \
    "esp_input=1 esp_udp_encap_input=1 enc_input_packets=1"
expect "valid AH on the AH SA (site 4 -> h1)" \
    "ah(0x2001, $((++S2)), KEYS['0x2001'], inner('198.18.4.4', '$H', 6003))" \
    "ah_input=1 enc_input_packets=1"

echo "== unknown SPI, truncated headers"
expect "ESP with an unknown SPI (3 packets)" \
    "[out(bytes.fromhex('dead0001000000%02x' % i) + os.urandom(60)) for i in (1, 2, 3)]" \
    "esp_no_sa=3 esp_input=3"
expect "ESP-in-UDP with an unknown SPI" \
    "out(bytes.fromhex('dead000200000001') + os.urandom(60), encap=True)" \
    "esp_no_sa=1 esp_input=1 esp_udp_encap_input=1"
expect "IP header only, protocol ESP (2 packets)" \
    "[ip('192.0.2.3', '192.0.2.1', 50, b'')] * 2" \
    "esp_short=2 esp_input=2"
expect "ESP shorter than SPI + sequence number (6 bytes)" \
    "out(bytes.fromhex('00003001') + b'\\x00\\x07')" \
    "esp_short=1 esp_input=1"
expect "ESP on a known SPI, shorter than IV + ICV (header + 20 bytes)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7001))[:28])" \
    "esp_short=1 esp_input=1"
expect "AH shorter than its fixed header" \
    "ip('192.0.2.3', '192.0.2.1', 51, bytes.fromhex('0405000000002001'))" \
    "ah_short=1 ah_input=1"

echo "== padding, ICV, next header"
expect "bad padding bytes under a valid ICV (1, 2, 9, 4)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7002), pad=[1, 2, 9, 4]))" \
    "esp_bad_padding=1 esp_input=1"
expect "pad length past the payload under a valid ICV (250)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7003), padlen=250))" \
    "esp_bad_padding=1 esp_input=1"
expect "wrong ICV (last bit flipped)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7004), tamper='icv'))" \
    "esp_auth_failed=1 esp_input=1"
expect "ciphertext bit flipped" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7005), tamper='ct'))" \
    "esp_auth_failed=1 esp_input=1"
expect "right SPI, wrong key" \
    "out(esp(0x3001, $((++S3)), KEYS['0x1001'], inner('198.18.3.3', '$H', 7006)))" \
    "esp_auth_failed=1 esp_input=1"
expect "AH with a wrong ICV" \
    "ah(0x2001, $((++S2)), KEYS['0x2001'], inner('198.18.4.4', '$H', 7007), tamper='icv')" \
    "ah_auth_failed=1 ah_input=1"
expect "AH with a wrong length field (ICV of 12 bytes claimed)" \
    "ah(0x2001, $((++S2)), KEYS['0x2001'], inner('198.18.4.4', '$H', 7008), plen=4)" \
    "ah_bad_auth_length=1 ah_input=1"
expect "valid ICV, next header 59 (a dummy TFC packet)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7009), nh=59))" \
    "esp_bad_next_header=1 esp_input=1"
expect "valid ICV, next header IPv4 over bytes that are no IPv4 packet" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], b'\\x60' + os.urandom(27)))" \
    "esp_bad_next_header=1 esp_input=1"
expect "valid ICV, inner IPv4 header with IHL 4" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], b'\\x44' + inner('198.18.3.3', '$H', 7023)[1:]))" \
    "esp_bad_next_header=1 esp_input=1"
expect "valid ICV, inner IPv4 total length (1000) beyond the payload" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], (lambda p: p[:2] + (1000).to_bytes(2, 'big') + p[4:])(inner('198.18.3.3', '$H', 7024))))" \
    "esp_bad_next_header=1 esp_input=1"

echo "== replay"
seq=$((++S3))
replayed="out(esp(0x3001, $seq, KEYS['0x3001'], inner('198.18.3.3', '$H', 6004)))"
# The same bytes twice: the first is a control (reaches h1), the second a replay.
expect "valid packet (sequence $seq), to be replayed" "$replayed" "esp_input=1 enc_input_packets=1"
expect "the same packet again (replayed)" "$replayed" "esp_replay=1 esp_input=1"
expect "the same packet 3 more times" "[$replayed] * 3" "esp_replay=3 esp_input=3"
# Move the window 200 ahead. Inbound numbers are recorded ahead of use in small chunks
# (a restarted encd must not accept what it accepted before), so a jump may be refused
# once while the record catches up (esp_replay_state_pending): send until it passes.
S3=$((S3 + 200)); ahead=$S3; pending=0
for try in $(seq 10); do
    counters "$IT_TMP/before.json"
    forge "out(esp(0x3001, $ahead, KEYS['0x3001'], inner('198.18.3.3', '$H', 6005)))"
    sleep 0.4
    counters "$IT_TMP/after.json"
    d=$(delta "$IT_TMP/before.json" "$IT_TMP/after.json")
    grep -q '^enc_input_packets 1$' <<<"$d" && break
    grep -q '^esp_replay_state_pending 1$' <<<"$d" || fail "jump to sequence $ahead: $(tr '\n' ' ' <<<"$d")"
    pending=$((pending + 1))
    sleep 0.5
done
grep -q '^enc_input_packets 1$' <<<"$d" || fail "a jump of 200 was never accepted"
ok "window moved to $ahead (refused $pending time(s) as not yet recorded, esp_replay_state_pending, then accepted)"
expect "very old sequence number ($((ahead - 100)), window 64, top $ahead), valid ICV" \
    "out(esp(0x3001, $((ahead - 100)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7010)))" \
    "esp_replay=1 esp_input=1"
expect "sequence number 0, valid ICV" \
    "out(esp(0x3001, 0, KEYS['0x3001'], inner('198.18.3.3', '$H', 7011)))" \
    "esp_replay_zero=1 esp_input=1"
expect "AH with sequence number 0, valid ICV" \
    "ah(0x2001, 0, KEYS['0x2001'], inner('198.18.4.4', '$H', 7012))" \
    "ah_replay_zero=1 ah_input=1"
a2=$((++S2))
replayed="ah(0x2001, $a2, KEYS['0x2001'], inner('198.18.4.4', '$H', 6006))"
expect "valid AH (sequence $a2), to be replayed" "$replayed" "ah_input=1 enc_input_packets=1"
expect "the same AH packet again (replayed)" "$replayed" "ah_replay=1 ah_input=1"

echo "== the wrong protocol or encapsulation for the SA"
# The SA is looked up by (destination, SPI, protocol), as OpenBSD's gettdb does: ESP
# to the SPI of an AH SA finds no ESP SA. (Docs/counters.md gives "an AH SA's SPI on
# an ESP packet" as the example of esp_no_transform, which that lookup cannot reach.)
expect "ESP to the AH SA's SPI (0x2001), a valid AES-GCM packet under another SA's key" \
    "out(esp(0x2001, 1, KEYS['0x3001'], inner('198.18.4.4', '$H', 7013)))" \
    "esp_no_sa=1 esp_input=1"
expect "AH to the ESP SA's SPI (0x3001)" \
    "ah(0x3001, 1, KEYS['0x2001'], inner('198.18.3.3', '$H', 7014))" \
    "ah_no_sa=1 ah_input=1"
expect "ESP-in-UDP (valid) to the non-encapsulating SA 0x3001" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '$H', 7015)), encap=True)" \
    "esp_udp_for_plain_sa=1 esp_input=1 esp_udp_encap_input=1"
expect "raw ESP (valid) to the encapsulating SA 0x5001" \
    "out(esp(0x5001, $((++S5)), KEYS['0x5001'], inner('198.18.3.3', '$H', 7016)))" \
    "esp_raw_for_udp_sa=1 esp_input=1"

echo "== inner packets outside the SA's flows"
expect "valid ESP, inner source 198.18.9.9 (in no flow)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.9.9', '$H', 7501)))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
expect "second peer 192.0.2.3 (valid SA for site 3) spoofing site 2's 198.18.2.20" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.2.20', '$H', 7502)))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
expect "second peer spoofing site 2 over its udpencap SA" \
    "out(esp(0x5001, $((++S5)), KEYS['0x5001'], inner('198.18.2.20', '$H', 7503)), encap=True)" \
    "esp_policy_mismatch=1 esp_input=1 esp_udp_encap_input=1 enc_input_packets=1"
expect "valid ESP from site 3 to gw1's own wan address (outside the flow)" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '192.0.2.1', 7504)))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
expect "valid AH carrying site 3 (an ESP-only site) to h1" \
    "ah(0x2001, $((++S2)), KEYS['0x2001'], inner('198.18.3.3', '$H', 7505))" \
    "ah_policy_mismatch=1 ah_input=1 enc_input_packets=1"
expect "valid ESP carrying site 4 (an AH-only site) to h1" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.4.4', '$H', 7506)))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
expect "valid ESP carrying IPv6 (next header 41) through IPv4-only flows" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], bytes.fromhex('600000000008114020010db8000000000000000000000001' + '20010db8000000000000000000000002') + udp(1, 7507, b''), nh=41))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
expect "valid ESP from site 3 to 127.0.0.1" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], inner('198.18.3.3', '127.0.0.1', 7508)))" \
    "esp_policy_mismatch=1 esp_input=1 enc_input_packets=1"
# An inner IPv4 header with a wrong checksum is accepted by ESP (its ICV verified) and
# written into enc0; the kernel's ip_rcv drops it there, before any hook, and counts it
# (as OpenBSD's ip_input would count ips_badsum after enc0). It must not go further.
csum_before=$(on gw1 nstat -asz IpExtInCsumErrors | awk '$1 == "IpExtInCsumErrors" { print $2 }')
expect "valid ESP, inner IPv4 header checksum wrong" \
    "out(esp(0x3001, $((++S3)), KEYS['0x3001'], (lambda p: p[:10] + bytes([p[10] ^ 0xff, p[11]]) + p[12:])(inner('198.18.3.3', '$H', 7509))))" \
    "esp_input=1 enc_input_packets=1"
csum_after=$(on gw1 nstat -asz IpExtInCsumErrors | awk '$1 == "IpExtInCsumErrors" { print $2 }')
[[ $((csum_after - csum_before)) -eq 1 ]] || fail "the kernel's IpExtInCsumErrors on gw1 went from $csum_before to $csum_after (want +1)"
ok "  ... dropped by gw1's kernel at enc0 (IpExtInCsumErrors +1)"

sleep 0.5
stop_capture gw1 lan
stop_capture gw1 enc0
# Ports 7000-7499 were refused before decryption finished: nowhere. 7501-7508 failed
# the inbound check, which runs after NAT on enc0 (contract 4): they are seen on enc0
# (as on OpenBSD's enc0, where bpf sees them before ipsec_forward_check) but never leave it.
lan_hostile=$(tcpdump -n -r "$IT_TMP/lan.pcap" 'udp and dst portrange 7000-7999' 2>/dev/null | wc -l)
[[ $lan_hostile -eq 0 ]] || fail "$lan_hostile hostile packets on gw1's lan: $(tcpdump -n -r "$IT_TMP/lan.pcap" 'udp and dst portrange 7000-7999' 2>/dev/null | head -5)"
enc0_early=$(tcpdump -n -r "$IT_TMP/enc0.pcap" 'udp and dst portrange 7000-7499' 2>/dev/null | wc -l)
[[ $enc0_early -eq 0 ]] || fail "$enc0_early packets refused before decryption appear on enc0: $(tcpdump -n -r "$IT_TMP/enc0.pcap" 'udp and dst portrange 7000-7499' 2>/dev/null | head -5)"
enc0_late=$(tcpdump -n -r "$IT_TMP/enc0.pcap" 'udp and dst portrange 7500-7999' 2>/dev/null | wc -l)
for p in 6001 6002 6003 6004 6005 6006; do
    n=$(tcpdump -n -r "$IT_TMP/lan.pcap" "udp and dst port $p" 2>/dev/null | wc -l)
    [[ $n -eq 1 ]] || fail "control packet to port $p reached gw1's lan $n times (want 1)"
done
ok "$CASES cases: no hostile packet on gw1's lan; none refused before decryption on enc0; the 9 that passed ESP but not the inbound check or the kernel seen on enc0 $enc0_late times, dropped there; each control reached the lan exactly once (the replayed one too)"

# --- garbage flood while good traffic runs ----------------------------------------------
echo "== garbage flood"
# iperf3 TCP h1 -> h2 for 5 s; prints Mbit/s received (0 if iperf3 failed).
iperf() {
    on h2 timeout 30 iperf3 -s -1 -p 5201 >"$IT_TMP/iperf-s-$1.out" 2>&1 &
    local srv=$!
    sleep 0.5
    on h1 timeout 25 iperf3 -c 198.18.2.20 -p 5201 -t 5 -J >"$IT_TMP/iperf-$1.json" 2>"$IT_TMP/iperf-$1.err" || true
    wait $srv 2>/dev/null || true
    python3 - "$IT_TMP/iperf-$1.json" <<'PY'
import json, sys
try:
    print("%.1f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e6))
except Exception:
    print("0")
PY
}
base=$(iperf base)
[[ $base != 0 ]] || fail "iperf3 through the tunnel without a flood: $(cat "$IT_TMP/iperf-base.err" "$IT_TMP/iperf-base.json" | tail -5)"
counters "$IT_TMP/flood-before.json"
capture gw1 lan "$IT_TMP/flood-lan.pcap"
on gw2 python3 "$IT_TMP/forge.py" "$GW1_MAC" --flood "$FLOOD_SECONDS" >"$IT_TMP/flood.out" 2>&1 &
flood=$!
sleep 1
during=$(iperf flood)
start=$(date +%s.%N)
tcp_transfer h1 h2 198.18.2.20 2000000
took=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
flood_alive=0; kill -0 $flood 2>/dev/null && flood_alive=1
wait $flood || fail "the flood sender failed: $(cat "$IT_TMP/flood.out")"
[[ $flood_alive -eq 1 ]] || fail "the flood ended before the 2 MB transfer did (raise FLOOD_SECONDS)"
stop_capture gw1 lan
kill -0 "$(encd_pid gw1)" 2>/dev/null || fail "encd on gw1 died under the flood: $(tail -5 "$IT_TMP/gw1-encd.log")"
counters "$IT_TMP/flood-after.json"
on gw1 timeout 10 "$ENCCTL" -S "$SOCK1" -s sa >"$IT_TMP/sa-after.out" || fail "encctl -s sa after the flood"
grep -q "spi 0x00001001" "$IT_TMP/sa-after.out" || fail "encctl -s sa after the flood: $(cat "$IT_TMP/sa-after.out")"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 after the flood"
d=$(delta "$IT_TMP/flood-before.json" "$IT_TMP/flood-after.json")
get() { awk -v c="$1" '$1 == c { print $2 }' <<<"$d"; }
on_lan=$(tcpdump -n -r "$IT_TMP/flood-lan.pcap" 'not (host 198.18.2.20 and host 198.18.1.10) and not arp and not icmp6' 2>/dev/null | wc -l)
[[ $on_lan -eq 0 ]] || fail "$on_lan packets of the flood on gw1's lan: $(tcpdump -n -r "$IT_TMP/flood-lan.pcap" 'not (host 198.18.2.20 and host 198.18.1.10)' 2>/dev/null | head -3)"
[[ -z $(get esp_policy_mismatch) && -z $(get esp_bad_padding) ]] || fail "random bytes got past the ICV check: $(tr '\n' ' ' <<<"$d")"
ok "flood: $(cat "$IT_TMP/flood.out") (random ESP/ESP-in-UDP, half on live SPIs) from gw2's namespace"
ok "flood: encd counted esp_input +$(get esp_input), esp_no_sa +$(get esp_no_sa), esp_auth_failed +$(get esp_auth_failed), esp_short +$(get esp_short); the kernel dropped queue_overflow +$(get queue_overflow); nothing reached the lan"
ok "TCP h1 -> h2 (iperf3, 5 s): ${base} Mbit/s without the flood, ${during} Mbit/s during it"
ok "a 2 MB TCP transfer h1 -> h2 completed intact during the flood in ${took} s; encd alive, encctl -s sa answers, ping works"
