#!/usr/bin/env bash
# The administrator's filter on enc0 decides, as pf on OpenBSD's enc0 does. Site to
# site (h1 — gw1 — internet — gw2 — h2, ESP tunnel with AES-GCM), and
#   gw2: `iifname "enc0" tcp dport 5002 drop` — decrypted traffic to h2:5002 is
#        dropped after encd has let it in, h2:5001 works; the rule's counter equals the
#        SYNs h1 sent, and encd logs nothing about them.
#   gw1: `oifname "enc0" udp dport 6002 drop` — before encryption: datagrams to 6002
#        never leave as ESP (capture on the internet link), those to 6001 do and arrive.
source "$(dirname "$0")/lib.sh"

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    start_encd $gw "$IT_TMP/$gw.conf"
done
on gw2 nft -f - <<'NFT'
table inet admin {
    chain forward { type filter hook forward priority 0; policy accept;
        iifname "enc0" tcp dport 5002 counter drop comment "enc0-in-drop-5002"
        iifname "enc0" tcp dport 5001 counter comment "enc0-in-5001"
    }
}
NFT
on gw1 nft -f - <<'NFT'
table inet admin {
    chain forward { type filter hook forward priority 0; policy accept;
        oifname "enc0" udp dport 6002 counter drop comment "enc0-out-drop-6002"
        oifname "enc0" udp dport 6001 counter comment "enc0-out-6001"
    }
}
NFT

on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 through the tunnel"
ok "tunnel up: h1 pings h2"

# --- gw2, inbound: TCP 5001 passes, 5002 is dropped on enc0.
head -c 300000 /dev/urandom >"$IT_TMP/blob"
want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
on h2 timeout 20 nc -l -p 5001 >"$IT_TMP/got" &
srv=$!
sleep 0.5
on h1 timeout 20 nc -N 198.18.2.20 5001 <"$IT_TMP/blob" || fail "TCP to h2:5001"
wait $srv || fail "h2 did not receive on 5001"
[[ $(sha256sum <"$IT_TMP/got" | cut -d' ' -f1) == "$want" ]] || fail "TCP bytes to h2:5001 differ"
passed=$(nft_counter gw2 admin forward enc0-in-5001)
[[ ${passed:-0} -gt 10 ]] || fail "gw2's enc0 rule for 5001 counted ${passed:-nothing}"
ok "TCP to h2:5001: 300000 bytes intact; gw2 counted $passed packets from enc0 to 5001"

log_lines=$(cat "$IT_TMP"/gw*-encd.log | wc -l)
pcap_start gw1 lan "$IT_TMP/lan1.pcap"
pcap_start gw2 wan "$IT_TMP/wan2.pcap"
pcap_start h2 eth0 "$IT_TMP/h2.pcap"
on h2 timeout 6 nc -l -p 5002 >"$IT_TMP/got5002" &
srv=$!
sleep 0.5
if on h1 timeout 5 nc -w 3 -N 198.18.2.20 5002 </dev/null; then fail "TCP to h2:5002 connected through gw2's drop rule"; fi
wait $srv || true
pcap_stop gw1 lan; pcap_stop gw2 wan; pcap_stop h2 eth0
syns=$(tcpdump -n -r "$IT_TMP/lan1.pcap" 'tcp dst port 5002 and tcp[tcpflags] & tcp-syn != 0' 2>/dev/null | wc -l)
dropped=$(nft_counter gw2 admin forward enc0-in-drop-5002)
esp_in=$(tcpdump -n -r "$IT_TMP/wan2.pcap" 'esp and dst host 192.0.2.2' 2>/dev/null | wc -l)
at_h2=$(tcpdump -n -r "$IT_TMP/h2.pcap" 'tcp port 5002' 2>/dev/null | wc -l)
[[ $syns -ge 2 ]] || fail "h1 sent only $syns SYNs to 5002"
[[ ${dropped:-0} -eq $syns ]] || fail "gw2's drop rule counted ${dropped:-nothing}, h1 sent $syns SYNs"
[[ $esp_in -ge $syns ]] || fail "only $esp_in ESP packets reached gw2 for $syns SYNs"
[[ $at_h2 -eq 0 ]] || fail "$at_h2 packets to/from 5002 reached h2's link"
[[ ! -s "$IT_TMP/got5002" ]] || fail "h2's listener on 5002 received data"
[[ $(cat "$IT_TMP"/gw*-encd.log | wc -l) -eq $log_lines ]] || fail "encd logged during the drop: $(tail -2 "$IT_TMP"/gw2-encd.log)"
ok "TCP to h2:5002 refused: $syns SYNs arrived as ESP ($esp_in packets), gw2's enc0 rule dropped $dropped, none reached h2, encd logged nothing"

# --- gw1, outbound: UDP 6002 is dropped before encryption, 6001 leaves as ESP.
cat >"$IT_TMP/udp_recv.py" <<'PY'
import select, socket, sys, time
socks = {}
for port in (6001, 6002):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("198.18.2.20", port))
    socks[s] = port
counts = {6001: 0, 6002: 0}
end = time.time() + float(sys.argv[1])
while time.time() < end:
    r, _, _ = select.select(list(socks), [], [], 0.1)
    for s in r:
        s.recv(2048)
        counts[socks[s]] += 1
print(counts[6001], counts[6002])
PY
on h2 python3 "$IT_TMP/udp_recv.py" 6 >"$IT_TMP/udp_counts" &
rcv=$!
sleep 0.5
# send PORT FILE: five datagrams from h1 to h2:PORT, captured on the internet link.
send_udp() {
    pcap_start gw1 wan "$2"
    on h1 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(5):
    s.sendto(b"encd-udp-%d" % i, ("198.18.2.20", int(sys.argv[1])))
    time.sleep(0.05)
' "$1"
    sleep 0.5
    pcap_stop gw1 wan
}
send_udp 6002 "$IT_TMP/wan-6002.pcap"
send_udp 6001 "$IT_TMP/wan-6001.pcap"
wait $rcv || fail "UDP receiver on h2"
read -r got6001 got6002 <"$IT_TMP/udp_counts"
esp6002=$(tcpdump -n -r "$IT_TMP/wan-6002.pcap" 'esp' 2>/dev/null | wc -l)
esp6001=$(tcpdump -n -r "$IT_TMP/wan-6001.pcap" 'esp' 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$IT_TMP/wan-6002.pcap" 'udp port 6002' 2>/dev/null | wc -l)
drop6002=$(nft_counter gw1 admin forward enc0-out-drop-6002)
pass6001=$(nft_counter gw1 admin forward enc0-out-6001)
[[ $esp6002 -eq 0 && $clear -eq 0 ]] || fail "datagrams to 6002 left gw1: $esp6002 ESP, $clear cleartext"
[[ ${drop6002:-0} -eq 5 ]] || fail "gw1's enc0 drop rule counted ${drop6002:-nothing} of 5 datagrams to 6002"
[[ $got6002 -eq 0 ]] || fail "h2 received $got6002 datagrams on 6002"
[[ $esp6001 -eq 5 && ${pass6001:-0} -eq 5 && $got6001 -eq 5 ]] \
    || fail "UDP 6001: $esp6001 ESP on the link, gw1 counted ${pass6001:-nothing}, h2 received $got6001 (5 each expected)"
ok "UDP to 6002 dropped by gw1's oifname enc0 rule ($drop6002) before encryption: no ESP left; 6001: 5 ESP packets, 5 received"
