#!/usr/bin/env bash
# Host to host, transport mode: h1 and h2 on one link, encd on both, host flows with
# the peer defaulting to the destination. Four host pairs, one per protocol and family:
#   ESP (AES-256-GCM)   192.0.2.1   <-> 192.0.2.2       2001:db8::1  <-> 2001:db8::2
#   AH  (HMAC-SHA2-256) 192.0.2.11  <-> 192.0.2.12      2001:db8::11 <-> 2001:db8::12
# For each: ping and a TCP transfer (bytes checked). A capture on the link shows that
# the protected traffic leaves only as ESP resp. AH, never bare ICMP/TCP; ESP hides a
# marker the payload carries, AH shows it (integrity, not confidentiality) behind an
# AH header whose next header is the transport protocol. A captured AH packet sent
# again is accepted, the same with one byte changed is refused.
source "$(dirname "$0")/lib.sh"

ns h1; ns h2
link h1 eth0 192.0.2.1/24,192.0.2.11/24,2001:db8::1/64,2001:db8::11/64 \
     h2 eth0 192.0.2.2/24,192.0.2.12/24,2001:db8::2/64,2001:db8::12/64

GCM_A=0x$(printf '55%.0s' $(seq 36)); GCM_B=0x$(printf '66%.0s' $(seq 36))
GCM_C=0x$(printf '77%.0s' $(seq 36)); GCM_D=0x$(printf '88%.0s' $(seq 36))   # one key per SA
for h in h1 h2; do
    if [[ $h == h1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$h.conf" <<CONF
# host $me to host $peer, transport mode; peers default to the destination
flow esp from 192.0.2.$me to 192.0.2.$peer
flow ah from 192.0.2.1$me to 192.0.2.1$peer
flow esp from 2001:db8::$me to 2001:db8::$peer
flow ah from 2001:db8::1$me to 2001:db8::1$peer
esp transport from 192.0.2.1 to 192.0.2.2 spi 0x1100:0x1101 enc aes-256-gcm enckey $GCM_A:$GCM_B
ah transport from 192.0.2.11 to 192.0.2.12 spi 0x1200:0x1201 replay 0 auth hmac-sha2-256 authkey $AUTH_A:$AUTH_B
esp transport from 2001:db8::1 to 2001:db8::2 spi 0x1300:0x1301 enc aes-256-gcm enckey $GCM_C:$GCM_D
ah transport from 2001:db8::11 to 2001:db8::12 spi 0x1400:0x1401 auth hmac-sha2-256 authkey $AUTH_B:$AUTH_A
CONF
    start_encd $h "$IT_TMP/$h.conf"
done

# A marker the payloads carry: visible on the wire under AH, hidden under ESP.
MARK_HEX=656e63642d6d61726b   # "encd-mark"
{ for _ in $(seq 2000); do printf 'encd-mark-%s\n' "$(head -c 48 /dev/urandom | base64 -w0)"; done; } >"$IT_TMP/blob"
want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
port=5100

# exchange PROTO SRC DST: ping and a TCP transfer from h1 (SRC) to h2 (DST), captured
# on h2's end of the link into $IT_TMP/PROTO-DST.pcap.
exchange() {
    local proto=$1 src=$2 dst=$3 fam=-4 cap
    [[ $dst == *:* ]] && fam=-6
    cap="$IT_TMP/$proto-$dst.pcap"
    pcap_start h2 eth0 "$cap"
    on h1 ping $fam -c 3 -i 0.2 -W 2 -p "$MARK_HEX" -I "$src" "$dst" >/dev/null || fail "$proto ping $src -> $dst"
    port=$((port + 1))
    on h2 timeout 20 nc $fam -l -s "$dst" -p $port >"$IT_TMP/got" &
    local srv=$!
    sleep 0.5
    on h1 timeout 20 nc -N -s "$src" "$dst" $port <"$IT_TMP/blob" || fail "$proto TCP send $src -> $dst"
    wait $srv || fail "$proto TCP receive at $dst"
    [[ $(sha256sum <"$IT_TMP/got" | cut -d' ' -f1) == "$want" ]] || fail "$proto TCP bytes $src -> $dst differ"
    pcap_stop h2 eth0
    ok "$proto $src -> $dst: ping and $(stat -c %s "$IT_TMP/blob") bytes over TCP intact"
}

# count FILE FILTER: packets in FILE matching the pcap FILTER.
count() { tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l; }
# marker FILE: how many captured frames carry the marker in their bytes.
marker() { tshark -r "$1" -T fields -e frame.number -Y 'frame contains "encd-mark"' 2>/dev/null | wc -l; }

# --- ESP
for pair in "192.0.2.1 192.0.2.2" "2001:db8::1 2001:db8::2"; do
    set -- $pair
    exchange esp "$1" "$2"
    cap="$IT_TMP/esp-$2.pcap"
    if [[ $2 == *:* ]]; then
        bare=$(count "$cap" "ip6 and (ip6[6] == 58 and (ip6[40] == 128 or ip6[40] == 129) or ip6[6] == 6)")
        prot=$(count "$cap" "ip6 and ip6[6] == 50")
    else
        bare=$(count "$cap" "ip and (ip[9] == 1 or ip[9] == 6)")
        prot=$(count "$cap" "ip and ip[9] == 50")
    fi
    [[ $bare -eq 0 ]] || fail "ESP $1 <-> $2: $bare bare ICMP/TCP packets on the link"
    [[ $prot -gt 20 ]] || fail "ESP $1 <-> $2: only $prot ESP packets on the link"
    # Both directions were protected: ESP with each SPI.
    spis=$(tshark -r "$cap" -T fields -e esp.spi -Y esp 2>/dev/null | sort -u | tr '\n' ' ')
    [[ $(wc -w <<<"$spis") -eq 2 ]] || fail "ESP $1 <-> $2: SPIs seen: $spis"
    m=$(marker "$cap")
    [[ $m -eq 0 ]] || fail "ESP $1 <-> $2: the marker is readable in $m captured frames"
    ok "ESP $1 <-> $2 on the link: $prot ESP packets (SPIs $spis), no bare ICMP/TCP, payload unreadable"
done

# --- AH
for pair in "192.0.2.11 192.0.2.12" "2001:db8::11 2001:db8::12"; do
    set -- $pair
    exchange ah "$1" "$2"
    cap="$IT_TMP/ah-$2.pcap"
    if [[ $2 == *:* ]]; then
        bare=$(count "$cap" "ip6 and (ip6[6] == 58 and (ip6[40] == 128 or ip6[40] == 129) or ip6[6] == 6)")
        prot=$(count "$cap" "ip6 and ip6[6] == 51")
        # AH's next header: ICMPv6 for the pings, TCP for the transfer.
        icmp=$(count "$cap" "ip6 and ip6[6] == 51 and ip6[40] == 58")
        tcp=$(count "$cap" "ip6 and ip6[6] == 51 and ip6[40] == 6")
        echo_in_ah=$(tshark -r "$cap" -T fields -e frame.number -Y 'ah and icmpv6.type == 128' 2>/dev/null | wc -l)
    else
        bare=$(count "$cap" "ip and (ip[9] == 1 or ip[9] == 6)")
        prot=$(count "$cap" "ip and ip[9] == 51")
        icmp=$(count "$cap" "ip and ip[9] == 51 and ip[20] == 1")
        tcp=$(count "$cap" "ip and ip[9] == 51 and ip[20] == 6")
        echo_in_ah=$(tshark -r "$cap" -T fields -e frame.number -Y 'ah and icmp.type == 8' 2>/dev/null | wc -l)
    fi
    [[ $bare -eq 0 ]] || fail "AH $1 <-> $2: $bare bare ICMP/TCP packets on the link"
    [[ $icmp -ge 6 ]] || fail "AH $1 <-> $2: only $icmp AH packets carry ICMP (3 echo requests and 3 replies expected)"
    [[ $tcp -gt 20 ]] || fail "AH $1 <-> $2: only $tcp AH packets carry TCP"
    [[ $echo_in_ah -eq 3 ]] || fail "AH $1 <-> $2: $echo_in_ah echo requests dissected inside AH, 3 expected"
    spis=$(tshark -r "$cap" -T fields -e ah.spi -Y ah 2>/dev/null | sort -u | tr '\n' ' ')
    [[ $(wc -w <<<"$spis") -eq 2 ]] || fail "AH $1 <-> $2: SPIs seen: $spis"
    m=$(marker "$cap")
    [[ $m -gt 3 ]] || fail "AH $1 <-> $2: the marker is readable in only $m frames (AH does not encrypt)"
    ok "AH $1 <-> $2 on the link: $prot AH packets (SPIs $spis; $icmp ICMP, $tcp TCP inside), no bare ICMP/TCP, payload readable in $m frames"
done

# So far neither encd refused anything.
for h in h1 h2; do
    if grep -qiE "policy|failed verification|replay" "$IT_TMP/$h-encd.log"; then
        fail "$h: encd logged a failure: $(grep -iE 'policy|failed verification|replay' "$IT_TMP/$h-encd.log" | head -3)"
    fi
done
ok "encd on both hosts logged no policy or authentication failure"

# AH protects what it shows: an echo request captured above, sent again from h1's
# link as it was, is answered (this AH SA has replay checking off: replay 0); with
# one payload byte changed it is refused and h2's encd reports the failed ICV.
replays=$IT_TMP/replays.pcap
pcap_start h2 eth0 "$replays"
on h1 python3 - "$IT_TMP/ah-192.0.2.12.pcap" <<'PY' || fail "resending captured AH packets"
import sys
from scapy.all import rdpcap, sendp, Ether, IP, AH
frames = [f for f in rdpcap(sys.argv[1])
          if IP in f and f[IP].src == "192.0.2.11" and AH in f and f[AH].nh == 1 and bytes(f[AH].payload)[:1] == b"\x08"]
assert frames, "no captured AH echo request"
good = bytes(frames[0])
bad = bytearray(good)
bad[-1] ^= 0x01                      # last byte of the ICMP payload
sendp(Ether(good), iface="eth0", verbose=False)
sendp(Ether(bytes(bad)), iface="eth0", verbose=False)
PY
sleep 1
pcap_stop h2 eth0
replies=$(tshark -r "$replays" -T fields -e frame.number -Y 'ah and ip.src == 192.0.2.12 and icmp.type == 0' 2>/dev/null | wc -l)
[[ $replies -eq 1 ]] || fail "h2 answered $replies of the resent AH echo requests (1 expected: the unmodified one)"
for _ in $(seq 20); do grep -q "failed verification" "$IT_TMP/h2-encd.log" && break; sleep 0.1; done
grep -E "failed verification.*192\.0\.2\.11.*0x00001200" "$IT_TMP/h2-encd.log" >/dev/null \
    || fail "h2's encd did not report the AH packet with the changed byte: $(tail -3 "$IT_TMP/h2-encd.log")"
ok "AH: a captured request sent again is answered; with one byte changed it is refused ($(grep "failed verification" "$IT_TMP/h2-encd.log" | head -1 | sed 's/^encd: //'))"
