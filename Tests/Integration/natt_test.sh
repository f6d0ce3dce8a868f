#!/usr/bin/env bash
# NAT traversal (RFC 3948): h1 — gw1 — nat — internet — gw2 — h2. gw1 sits behind a
# NAT that masquerades it and rewrites its UDP source port 4500 into 40000-40100; gw1
# and gw2 use ESP-in-UDP tunnel SAs (AES-128-GCM).
#
# How the two ends name each other:
#   gw1 (203.0.113.2, behind the NAT) names gw2's public address 198.51.100.2, as
#   usual: `esp tunnel from 203.0.113.2 to 198.51.100.2 ... udpencap`.
#   gw2 cannot reach 203.0.113.2; it names the address it sees gw1 at, the NAT's
#   public address 198.51.100.1: `esp tunnel from 198.51.100.1 to 198.51.100.2 ...`.
#   The SPI pair and keys are the same on both sides; each gateway takes the SA whose
#   destination is one of its own addresses as inbound. Nobody knows the NAT's port
#   in advance: gw2's outbound SA starts at port 4500 and follows the source port of
#   gw1's *authenticated* ESP-in-UDP packets (SecurityAssociation.learnNATEndpoint, the
#   inbound SA's natPartner), so gw1 must speak first (it does: h1 starts every
#   exchange here).
#
# Asserts: ping and a 2 MB TCP transfer h1 -> h2 (and a ping h2 -> h1); the internet
# link carries only UDP to/from gw2's port 4500 — no raw ESP, no cleartext; gw2 answers
# to exactly the port the NAT chose; NAT-T keepalives (one byte 0xff) reaching gw2 are
# dropped by encd's rule and do not disturb traffic; a forged ESP-in-UDP packet from
# another port fails authentication and does not move gw2's endpoint; when the NAT
# forgets its mapping and picks a new port, gw2 follows it.
source "$(dirname "$0")/lib.sh"

ns h1; ns gw1; ns nat; ns gw2; ns h2
link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
link gw1 wan 203.0.113.2/24 nat in 203.0.113.1/24
link nat out 198.51.100.1/24 gw2 wan 198.51.100.2/24
link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24
router gw1; router nat; router gw2
on h1 ip route add default via 198.18.1.1
on h2 ip route add default via 198.18.2.1
on gw1 ip route add default via 203.0.113.1
on gw2 ip route add default via 198.51.100.1

# The NAT: what comes from gw1's side leaves with the NAT's address, UDP with a source
# port from the given range (so gw1's 4500 never survives).
nat_rules() {
    on nat nft -f - <<NFT
table ip natbox {
    chain post { type nat hook postrouting priority srcnat; policy accept;
        iifname "in" oifname "out" meta l4proto udp counter masquerade to :$1 comment "udp"
        iifname "in" oifname "out" counter masquerade comment "other"
    }
}
NFT
}
nat_rules 40000-40100

cat >"$IT_TMP/gw1.conf" <<CONF
# gw1, behind the NAT: the peer is gw2's public address.
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 203.0.113.2 peer 198.51.100.2
esp tunnel from 203.0.113.2 to 198.51.100.2 spi 0x1000:0x1001 udpencap \\
    enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
cat >"$IT_TMP/gw2.conf" <<CONF
# gw2, public: gw1 is reachable only as the NAT's public address; the NAT's port is
# learned from gw1's authenticated packets.
flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 198.51.100.2 peer 198.51.100.1
esp tunnel from 198.51.100.1 to 198.51.100.2 spi 0x1000:0x1001 udpencap \\
    enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"

# gw2's side of the internet link, as seen in a capture: the NAT's ports towards gw2
# and gw2's ports towards the NAT (one per line, distinct). Port 39999 is the forger's
# (step 3), not the NAT's.
nat_ports() { tcpdump -n -r "$1" 'udp and src host 198.51.100.1 and not src port 39999 and dst host 198.51.100.2 and dst port 4500' 2>/dev/null \
    | sed -nE 's/.* 198\.51\.100\.1\.([0-9]+) > .*/\1/p' | sort -u; }
gw2_ports() { tcpdump -n -r "$1" 'udp and src host 198.51.100.2 and src port 4500 and dst host 198.51.100.1' 2>/dev/null \
    | sed -nE 's/.* > 198\.51\.100\.1\.([0-9]+):.*/\1/p' | sort -u; }
# the_port PCAP LO HI: the one NAT port of the capture, checked to lie in LO-HI and to
# be the one gw2 answered to.
the_port() {
    local from to
    from=$(nat_ports "$1"); to=$(gw2_ports "$1")
    [[ -n "$from" && $(wc -l <<<"$from") -eq 1 ]] || fail "NAT used source ports '${from//$'\n'/ }' towards gw2 (want one)"
    (( from >= $2 && from <= $3 )) || fail "NAT source port $from is not in $2-$3: the NAT did not rewrite 4500"
    [[ "$to" == "$from" ]] || fail "gw2 sent to ports '${to//$'\n'/ }' but the NAT maps gw1 to $from"
    echo "$from"
}

# 1. Traffic through the NAT.
capture gw2 wan "$IT_TMP/wan1.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 through the NAT"
ok "ping h1 -> h2 through the NAT"
on h2 ping -c 3 -i 0.2 -W 2 198.18.1.10 >/dev/null || fail "ping h2 -> h1 (gw2 towards the learned NAT endpoint)"
ok "ping h2 -> h1 towards the learned endpoint"

tcp_transfer h1 h2 198.18.2.20 2000000
ok "TCP 2 MB h1 -> h2 through the NAT, bytes intact"
stop_capture gw2 wan

raw=$(tcpdump -n -r "$IT_TMP/wan1.pcap" 'ip proto 50' 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$IT_TMP/wan1.pcap" 'icmp or tcp' 2>/dev/null | wc -l)
other=$(tcpdump -n -r "$IT_TMP/wan1.pcap" 'ip and not (udp and port 4500)' 2>/dev/null | wc -l)
encap=$(tcpdump -n -r "$IT_TMP/wan1.pcap" 'udp and (src port 4500 or dst port 4500)' 2>/dev/null | wc -l)
# encd sends ESP in UDP in runs (one UDP GSO send of up to 64 datagrams, UDPEncapSender):
# the capture sees a run as one packet of their sum, so what went over is counted in bytes.
encap_bytes=$(tcpdump -n -r "$IT_TMP/wan1.pcap" 'udp and (src port 4500 or dst port 4500)' 2>/dev/null \
    | sed -nE 's/.* length ([0-9]+)$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
[[ $raw -eq 0 ]] || fail "$raw raw ESP (protocol 50) packets on the internet link"
[[ $clear -eq 0 ]] || fail "$clear cleartext ICMP/TCP packets on the internet link"
[[ $other -eq 0 ]] || fail "$other IPv4 packets on the internet link that are not UDP port 4500"
[[ $encap_bytes -gt 2000000 ]] || fail "only $encap_bytes bytes of ESP in UDP ($encap packets) on the internet link for 2 MB"
port1=$(the_port "$IT_TMP/wan1.pcap" 40000 40100)
ok "internet link: $encap ESP-in-UDP packets ($encap_bytes bytes), none raw or clear; NAT port $port1, and gw2 answers to it"

# 2. NAT-T keepalives: gw1 sends them from its port 4500, so they take the same NAT
# mapping as its ESP; encd's rule on gw2 drops them, counted.
# encd's rules carry no nft comments, so the keepalive rule is found by its match.
keepalives() { on gw2 nft list chain inet encd ipsec_input 2>/dev/null \
    | sed -nE 's/.*udp length 9 .*counter packets ([0-9]+) .*drop.*/\1/p'; }
ka_before=$(keepalives)
[[ -n "$ka_before" ]] || fail "no NAT-T keepalive rule in gw2's encd table"
on gw1 python3 - <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("203.0.113.2", 4500))
for _ in range(5):
    s.sendto(b"\xff", ("198.51.100.2", 4500))
    time.sleep(0.05)
PY
sleep 0.3
ka_after=$(keepalives)
[[ $((ka_after - ka_before)) -eq 5 ]] || fail "gw2 dropped $((ka_after - ka_before)) NAT-T keepalives as such (sent 5)"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 after keepalives"
ok "5 NAT-T keepalives dropped by gw2's keepalive rule; traffic unaffected"

# 3. A forged ESP-in-UDP packet (gw2's inbound SPI, junk for the rest) from the NAT's
# address but another port: it fails authentication, and gw2 keeps answering to the
# port the NAT really uses for gw1.
capture gw2 wan "$IT_TMP/wan2.pcap"
on nat python3 - <<'PY'
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.51.100.1", 39999))
s.sendto(struct.pack("!II", 0x1000, 0x7fffffff) + os.urandom(64), ("198.51.100.2", 4500))
PY
for _ in $(seq 30); do
    grep -q "from 198.51.100.1 spi 0x00001000" "$IT_TMP/gw2-encd.log" && break
    sleep 0.1
done
grep -q "from 198.51.100.1 spi 0x00001000" "$IT_TMP/gw2-encd.log" \
    || fail "gw2 logged no authentication failure for the forged packet"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 after a forged packet"
stop_capture gw2 wan
port2=$(the_port "$IT_TMP/wan2.pcap" 40000 40100)
[[ $port2 == "$port1" ]] || fail "NAT port changed from $port1 to $port2 without reason"
[[ $(tcpdump -n -r "$IT_TMP/wan2.pcap" 'src host 198.51.100.2 and dst port 39999' 2>/dev/null | wc -l) -eq 0 ]] \
    || fail "gw2 sent to the forged packet's port 39999"
ok "forged ESP-in-UDP from port 39999 rejected (authentication), gw2 stays on port $port1"

# 4. The NAT forgets its mapping and takes ports from a new range: gw1's next packet
# leaves with a new port, and gw2 follows it.
on nat nft delete table ip natbox
nat_rules 41000-41100
on nat conntrack -F >/dev/null 2>&1
capture gw2 wan "$IT_TMP/wan3.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 after the NAT changed its port"
stop_capture gw2 wan
port3=$(the_port "$IT_TMP/wan3.pcap" 41000 41100)
ok "NAT remapped gw1 to port $port3 and gw2 followed (was $port1)"
