#!/usr/bin/env bash
# Flow types on a gateway pair (h1 — gw1 — internet — gw2 — h2, sites 198.18.1.0/24
# and 198.18.2.0/24 in an ESP tunnel). Inside the protected sites:
#   198.18.1.11 <-> 198.18.2.21  bypass  — cleartext on the internet link, works
#   198.18.1.12  -> 198.18.2.22  deny    — dropped at gw1, nothing leaves
#   198.18.1.0/24 -> 198.18.3.0/24  require, peer 192.0.2.3 without an SA — dropped,
#                                   nothing leaks
# Inbound: cleartext spoofing site 2's source arrives on gw1's internet side; gw1's
# inbound require flow drops it (require_in's counter), h1 never sees it, while a
# spoofed source outside every flow passes. Traffic matching no flow passes normally.
# Where ports decide (a bypass flow for UDP 5353 from 198.18.2.23 inside the require
# flow), encd judges each cleartext packet: UDP 5353 passes, the rest is dropped and
# counted (inbound_cleartext_dropped); with encd killed, all of it is dropped.
# Cleartext ICMP errors covered by the require flow pass with ipsec.icmp_accept_clear 1
# (the default: path MTU discovery, traceroute) and are dropped once encctl sets it to 0.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
[[ -x $ENCSTAT && -x $ENCCTL ]] || fail "no encstat/encctl in $IT_ROOT/.build/debug (swift build)"

ns h1; ns gw1; ns gw2; ns h2
link h1 eth0 198.18.1.10/24,198.18.1.11/24,198.18.1.12/24 gw1 lan 198.18.1.1/24
link gw1 wan 192.0.2.1/24 gw2 wan 192.0.2.2/24
link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24,198.18.2.21/24,198.18.2.22/24
router gw1; router gw2
on h1 ip route add default via 198.18.1.1
on h2 ip route add default via 198.18.2.1
on gw1 ip route add default via 192.0.2.2
on gw2 ip route add default via 192.0.2.1
# 198.18.3.30 answers from gw2: were the require flow's traffic leaked in cleartext,
# it would reach it.
on gw2 ip addr add 198.18.3.30/32 dev lo

cat >"$IT_TMP/gw1.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
flow esp from 198.18.1.11 to 198.18.2.21 type bypass
flow esp out from 198.18.1.12 to 198.18.2.22 type deny
flow esp from 198.18.1.0/24 to 198.18.3.0/24 peer 192.0.2.3
flow esp in proto udp from 198.18.2.23 to 198.18.1.10 port 5353 type bypass
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
cat >"$IT_TMP/gw2.conf" <<CONF
flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1
flow esp from 198.18.2.21 to 198.18.1.11 type bypass
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"

# count FILE FILTER: packets in FILE matching the pcap FILTER.
count() { tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l; }

# --- protected, for comparison: h1 -> h2 is ESP on the link.
pcap_start gw1 wan "$IT_TMP/protect.pcap"
on h1 ping -c 3 -i 0.2 -W 2 -I 198.18.1.10 198.18.2.20 >/dev/null || fail "ping through the tunnel"
pcap_stop gw1 wan
esp=$(count "$IT_TMP/protect.pcap" esp); clear=$(count "$IT_TMP/protect.pcap" icmp)
[[ $esp -eq 6 && $clear -eq 0 ]] || fail "protected ping: $esp ESP and $clear cleartext ICMP on the link (6 and 0 expected)"
ok "require flow with its SA: ping h1 -> h2 works, 6 ESP packets and no cleartext on the link"

# --- bypass: cleartext on purpose, end to end.
pcap_start gw1 wan "$IT_TMP/bypass.pcap"
on h1 ping -c 3 -i 0.2 -W 2 -I 198.18.1.11 198.18.2.21 >/dev/null || fail "ping over the bypass flow"
pcap_stop gw1 wan
clear=$(count "$IT_TMP/bypass.pcap" 'icmp and host 198.18.1.11 and host 198.18.2.21')
esp=$(count "$IT_TMP/bypass.pcap" esp)
[[ $clear -eq 6 && $esp -eq 0 ]] || fail "bypass ping: $clear cleartext ICMP and $esp ESP on the link (6 and 0 expected)"
ok "bypass flow 198.18.1.11 <-> 198.18.2.21 inside the protected sites: ping works, 6 cleartext ICMP, no ESP"

# --- deny: dropped at gw1, nothing on the link.
pcap_start gw1 wan "$IT_TMP/deny.pcap"
if on h1 ping -c 3 -i 0.2 -W 1 -I 198.18.1.12 198.18.2.22 >/dev/null; then fail "ping over the deny flow succeeded"; fi
pcap_stop gw1 wan
n=$(count "$IT_TMP/deny.pcap" 'esp or icmp')
[[ $n -eq 0 ]] || fail "deny flow: $n ESP/ICMP packets on the link"
ok "deny flow 198.18.1.12 -> 198.18.2.22: ping fails, nothing on the link"

# --- require without an SA: dropped, nothing leaks.
pcap_start gw1 wan "$IT_TMP/nosa.pcap"
if on h1 ping -c 3 -i 0.2 -W 1 -I 198.18.1.10 198.18.3.30 >/dev/null; then fail "ping over the require flow without an SA succeeded"; fi
pcap_stop gw1 wan
n=$(count "$IT_TMP/nosa.pcap" 'host 198.18.3.30 or esp')
[[ $n -eq 0 ]] || fail "require flow without an SA: $n packets leaked onto the link"
ok "require flow to 198.18.3.0/24 without an SA: ping fails, nothing leaks (cleartext or ESP)"

# --- matching no flow: passes normally, in cleartext.
# (Under load the first of the three echoes has, twice in ~30 runs, not shown up on
# the link at all; the check below wants at least two answered in cleartext.)
pcap_start gw1 wan "$IT_TMP/none.pcap"
on h1 ping -c 3 -i 0.2 -W 2 -I 198.18.1.10 192.0.2.2 >"$IT_TMP/ping-none" || fail "ping to gw2's own address (no flow)"
pcap_stop gw1 wan
req=$(count "$IT_TMP/none.pcap" 'icmp[0] == 8 and src host 198.18.1.10 and dst host 192.0.2.2')
rep=$(count "$IT_TMP/none.pcap" 'icmp[0] == 0 and src host 192.0.2.2 and dst host 198.18.1.10')
esp=$(count "$IT_TMP/none.pcap" esp)
[[ $req -ge 2 && $rep -eq $req && $esp -eq 0 ]] \
    || fail "no-flow ping: $req requests, $rep replies in cleartext, $esp ESP on the link: $(tail -2 "$IT_TMP/ping-none") $(tcpdump -n -r "$IT_TMP/none.pcap" 2>/dev/null)"
ok "traffic matching no flow (h1 -> 192.0.2.2): ping works, $req requests and $rep replies in cleartext, no ESP"

# --- inbound cleartext covered by gw1's inbound require flow is dropped.
require_drops() {
    on gw1 nft list chain inet encd require_in | sed -nE 's/.*ip saddr \. ip daddr @require_in4 counter packets ([0-9]+).*/\1/p'
}
before=$(require_drops)
gw1_mac=$(on gw1 cat /sys/class/net/wan/address)
pcap_start gw1 lan "$IT_TMP/spoof.pcap"
# From the internet side (gw2's wan, under netfilter and encd there): echo requests
# to h1 from h2's address (covered by the require flow) and from 198.18.4.40 (no flow).
on gw2 python3 - "$gw1_mac" <<'PY' || fail "sending spoofed packets"
import sys
from scapy.all import Ether, IP, ICMP, sendp
for src, ident in (("198.18.2.20", 0x5301), ("198.18.4.40", 0x5302)):
    for seq in range(3):
        sendp(Ether(dst=sys.argv[1]) / IP(src=src, dst="198.18.1.10", ttl=64) / ICMP(id=ident, seq=seq) / b"spoofed",
              iface="wan", verbose=False)
PY
sleep 0.5
pcap_stop gw1 lan
after=$(require_drops)
spoofed=$(count "$IT_TMP/spoof.pcap" 'icmp and src host 198.18.2.20 and dst host 198.18.1.10')
control=$(count "$IT_TMP/spoof.pcap" 'icmp and src host 198.18.4.40 and dst host 198.18.1.10')
[[ $control -eq 3 ]] || fail "the 3 spoofed packets from outside every flow should reach h1's link, $control did"
[[ $spoofed -eq 0 ]] || fail "$spoofed cleartext packets from 198.18.2.20 reached h1's link"
[[ $((after - before)) -eq 3 ]] || fail "require_in's drop counter went from $before to $after (3 more expected)"
ok "inbound cleartext from site 2's address: 3 dropped by require_in ($before -> $after), none reached h1; 3 from outside every flow passed"

# --- inbound cleartext where the ports decide: encd judges each packet.
# send_from_site2 PROTO...: from gw2's wan to h1, as from 198.18.2.23: UDP to 5353
# (bypass), UDP to 5354 and an echo request (require), three each.
send_from_site2() {
    on gw2 python3 - "$gw1_mac" <<'PY' || fail "sending cleartext from 198.18.2.23"
import sys
from scapy.all import Ether, IP, UDP, ICMP, sendp
base = Ether(dst=sys.argv[1]) / IP(src="198.18.2.23", dst="198.18.1.10", ttl=64)
for seq in range(3):
    for l4 in (UDP(sport=5353, dport=5353), UDP(sport=5353, dport=5354), ICMP(id=0x5303, seq=seq)):
        sendp(base / l4 / b"cleartext", iface="wan", verbose=False)
PY
    sleep 0.5
}
cleartext_drops() {
    on gw1 "$ENCSTAT" -S "$IT_TMP/gw1/run/encd.sock" -s -p enc -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"].get("inbound_cleartext_dropped", 0))'
}
check_queued() {
    on gw1 nft list chain inet encd require_in 2>/dev/null | sed -nE 's/.*@require_check4 counter packets ([0-9]+).*/\1/p'
}
on gw1 nft list set inet encd require_check4 2>/dev/null | has '198.18.2.23 . 198.18.1.10' \
    || fail "require_check4 lacks the bypass flow's pair: $(on gw1 nft list set inet encd require_check4)"
before_drops=$(cleartext_drops); before_queued=$(check_queued)
pcap_start gw1 lan "$IT_TMP/ports.pcap"
send_from_site2
pcap_stop gw1 lan
passed=$(count "$IT_TMP/ports.pcap" 'udp and src host 198.18.2.23 and dst port 5353')
refused=$(count "$IT_TMP/ports.pcap" 'src host 198.18.2.23 and (icmp or dst port 5354)')
drops=$(( $(cleartext_drops) - before_drops )); queued=$(( $(check_queued) - before_queued ))
[[ $passed -eq 3 && $refused -eq 0 ]] || fail "ports decide: $passed UDP 5353 (3 expected) and $refused others (0 expected) reached h1's link"
[[ $queued -eq 9 && $drops -eq 6 ]] || fail "ports decide: $queued queued to encd (9 expected), $drops counted inbound_cleartext_dropped (6 expected)"
ok "inbound cleartext from 198.18.2.23: encd let the 3 UDP 5353 packets of the bypass flow in and dropped 6 others (counted)"

# --- cleartext ICMP errors inside the require flow: ipsec.icmp_accept_clear decides.
# send_icmp_errors: from gw2's wan to h1, as from 198.18.2.24 (a require pair): a
# "fragmentation needed" quoting h1's packet, then an echo request, three each.
send_icmp_errors() {
    on gw2 python3 - "$gw1_mac" <<'PY' || fail "sending ICMP errors from 198.18.2.24"
import sys
from scapy.all import Ether, IP, UDP, ICMP, sendp
base = Ether(dst=sys.argv[1]) / IP(src="198.18.2.24", dst="198.18.1.10", ttl=64)
quoted = IP(src="198.18.1.10", dst="198.18.2.24", flags="DF") / UDP(sport=4000, dport=4001)
for seq in range(3):
    sendp(base / ICMP(type=3, code=4, nexthopmtu=1300) / quoted, iface="wan", verbose=False)
    sendp(base / ICMP(id=0x5304, seq=seq), iface="wan", verbose=False)
PY
    sleep 0.5
}
icmp_seen() {  # icmp_seen PCAP: "errors echoes" from 198.18.2.24 on h1's link
    echo "$(count "$1" 'icmp[0] == 3 and src host 198.18.2.24') $(count "$1" 'icmp[0] == 8 and src host 198.18.2.24')"
}
pcap_start gw1 lan "$IT_TMP/icmp-accept.pcap"
send_icmp_errors
pcap_stop gw1 lan
[[ $(icmp_seen "$IT_TMP/icmp-accept.pcap") == "3 0" ]] \
    || fail "icmp_accept_clear 1: (errors echoes) from 198.18.2.24 on h1's link are $(icmp_seen "$IT_TMP/icmp-accept.pcap"), 3 0 expected"
on gw1 "$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -T ipsec.icmp_accept_clear=0 >/dev/null || fail "encctl -T ipsec.icmp_accept_clear=0"
pcap_start gw1 lan "$IT_TMP/icmp-refuse.pcap"
send_icmp_errors
pcap_stop gw1 lan
[[ $(icmp_seen "$IT_TMP/icmp-refuse.pcap") == "0 0" ]] \
    || fail "icmp_accept_clear 0: (errors echoes) from 198.18.2.24 on h1's link are $(icmp_seen "$IT_TMP/icmp-refuse.pcap"), 0 0 expected"
ok "cleartext ICMP errors inside the require flow reach h1 with ipsec.icmp_accept_clear 1 (echoes do not), none once encctl sets it to 0"

kill -KILL "$(encd_pid gw1)"
sleep 0.3
pcap_start gw1 lan "$IT_TMP/ports-dead.pcap"
send_from_site2
pcap_stop gw1 lan
n=$(count "$IT_TMP/ports-dead.pcap" 'src host 198.18.2.23')
[[ $n -eq 0 ]] || fail "with encd killed, $n cleartext packets from 198.18.2.23 reached h1's link"
ok "with encd killed, none of them reach h1 (the cleartext queue fails closed)"
