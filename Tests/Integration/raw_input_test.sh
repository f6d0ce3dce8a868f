#!/usr/bin/env bash
# ESP and AH received on raw sockets (issue #9, fifth step): the kernel hands them to
# encd after every input hook, with no queue trip and no verdict.
#   1. a 300-datagram UDP flow through the tunnel arrives; gw2's NFQUEUE for IPsec in
#      (queue 2, still there for ESP in UDP) sees none of it, encd counts every ESP
#      packet, and encstat's ipsec-in row counts what the sockets received;
#   2. the administrator's input filter still comes first: an input rule at priority 0
#      dropping ESP from gw1 stops the tunnel, and encd sees none of those packets;
#      without it the tunnel works again;
#   3. with encd stopped (SIGTERM) and killed (SIGKILL) at gw2, ESP and AH reaching gw2
#      over IPv4 and IPv6 are dropped without the kernel's "protocol unreachable" /
#      "parameter problem" answer (encd's ipsec_unreachable chain), and nothing leaves
#      gw2 in cleartext.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}

sites
on gw1 ip -6 addr add 2001:db8:ff::1/64 dev wan nodad
on gw2 ip -6 addr add 2001:db8:ff::2/64 dev wan nodad
site_confs
# Host to host between the gateways, transport mode: ESP over IPv6, AH over IPv4
# (second addresses on the internet link).
on gw1 ip addr add 192.0.2.11/24 dev wan
on gw2 ip addr add 192.0.2.12/24 dev wan
for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >>"$IT_TMP/$gw.conf" <<CONF
flow esp from 2001:db8:ff::$me to 2001:db8:ff::$peer
flow ah from 192.0.2.1$me to 192.0.2.1$peer
esp transport from 2001:db8:ff::1 to 2001:db8:ff::2 spi 0x2000:0x2001 enc aes-128-gcm enckey $KEY_C:$KEY_D
ah transport from 192.0.2.11 to 192.0.2.12 spi 0x2100:0x2101 auth hmac-sha2-256 authkey $AUTH_A:$AUTH_B
CONF
done
for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw.conf"; done

counter() {
    on "$1" "$ENCSTAT" -S "$IT_TMP/$1/run/encd.sock" -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"][sys.argv[1]])' "$2"
}
# Packets NFQUEUE 2 ever handed out at gw2 (id_sequence: the 8th field).
queue2() { on gw2 awk '$1 == 2 { print $8 }' /proc/net/netfilter/nfnetlink_queue; }
# UDP datagrams h1 -> h2 (port 9999); udp_sink (lib.sh) counts what arrives.
udp_flow() {
    on h1 python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[1])):
    s.sendto(b"%06d" % i, ("198.18.2.20", 9999)); time.sleep(0.003)' "$1"
}

# 1. No queue trip for ESP at gw2.
on h1 ping -c 1 -W 2 198.18.2.20 >/dev/null || fail "no ping through the tunnel"
q1=$(queue2); e1=$(counter gw2 esp_input)
udp_sink 4 >"$IT_TMP/sink" &
sink=$!
sleep 0.3
udp_flow 300
wait $sink
got=$(cat "$IT_TMP/sink")
q2=$(queue2); e2=$(counter gw2 esp_input)
[[ $got -ge 295 ]] || fail "UDP: $got of 300 datagrams arrived"
[[ $((e2 - e1)) -ge 300 ]] || fail "gw2's encd counted $((e2 - e1)) ESP packets for 300 datagrams"
[[ $q1 == "$q2" ]] || fail "ESP went through gw2's IPsec-in queue: its id went from $q1 to $q2"
received=$(on gw2 "$ENCSTAT" -S "$IT_TMP/gw2/run/encd.sock" -j | python3 -c '
import json, sys
print([q for q in json.load(sys.stdin)["queues"] if q["role"] == "ipsec-in"][0]["received"])')
[[ $received -ge 300 ]] || fail "encstat's ipsec-in row received $received"
ok "UDP: $got of 300 datagrams arrived; gw2's encd took $((e2 - e1)) ESP packets from its raw socket, none through queue 2 (id $q2); ipsec-in received $received"
on gw1 ping -6 -c 2 -W 2 2001:db8:ff::2 >/dev/null || fail "no ping over ESP transport (IPv6)"
on gw1 ping -c 2 -W 2 -I 192.0.2.11 192.0.2.12 >/dev/null || fail "no ping over AH transport (IPv4)"
[[ $(counter gw2 ah_input) -ge 2 ]] || fail "gw2 counted no AH input"
ok "ESP over IPv6 and AH over IPv4 reach encd and are answered"

# 2. The administrator's input filter runs before encd.
on gw2 nft -f - <<'NFT'
table inet admin {
    chain in {
        type filter hook input priority 0; policy accept;
        ip saddr 192.0.2.1 meta l4proto esp counter drop
    }
}
NFT
e1=$(counter gw2 esp_input)
on h1 ping -c 3 -i 0.2 -W 1 198.18.2.20 >/dev/null && fail "ping passed an input filter that drops ESP"
e2=$(counter gw2 esp_input)
dropped=$(on gw2 nft list chain inet admin in | sed -nE 's/.*counter packets ([0-9]+).*/\1/p')
[[ $e1 == "$e2" ]] || fail "encd saw $((e2 - e1)) ESP packets the admin's input filter dropped"
[[ ${dropped:-0} -ge 3 ]] || fail "the admin's rule dropped ${dropped:-0} packets"
on gw2 nft delete table inet admin
on h1 ping -c 1 -W 2 198.18.2.20 >/dev/null || fail "no ping once the admin's rule is gone"
ok "an input rule of the admin's dropped $dropped ESP packets before encd saw them; without it the tunnel works"

# 3. With encd gone at gw2, ESP and AH are dropped quietly.
quiet() {
    local how=$1
    capture gw1 wan "$IT_TMP/$how.pcap"
    on h1 ping -c 3 -i 0.2 -W 1 198.18.2.20 >/dev/null && fail "$how: ping through a gateway without encd"
    on gw1 ping -6 -c 2 -i 0.2 -W 1 2001:db8:ff::2 >/dev/null && fail "$how: IPv6 ping to a gateway without encd"
    on gw1 ping -c 2 -i 0.2 -W 1 -I 192.0.2.11 192.0.2.12 >/dev/null && fail "$how: AH ping to a gateway without encd"
    sleep 0.3
    stop_capture gw1 wan
    local esp ah answers clear
    esp=$(tcpdump -nr "$IT_TMP/$how.pcap" esp 2>/dev/null | wc -l)
    ah=$(tcpdump -nr "$IT_TMP/$how.pcap" ah 2>/dev/null | wc -l)
    answers=$(tcpdump -nr "$IT_TMP/$how.pcap" '(icmp and icmp[0] == 3) or (icmp6 and ip6[40] == 4)' 2>/dev/null || true)
    clear=$(tcpdump -nr "$IT_TMP/$how.pcap" 'net 198.18.0.0/16' 2>/dev/null || true)
    [[ $esp -ge 5 && $ah -ge 2 ]] || fail "$how: the capture has $esp ESP and $ah AH packets"
    [[ -z $answers ]] || fail "$how: gw2 answered: $answers"
    [[ -z $clear ]] || fail "$how: cleartext on the internet link: $clear"
    local suppressed
    suppressed=$(on gw2 nft list chain inet encd ipsec_unreachable | sed -nE 's/.*counter packets ([0-9]+).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
    [[ ${suppressed:-0} -ge 1 ]] || fail "$how: ipsec_unreachable dropped nothing: $(on gw2 nft list chain inet encd ipsec_unreachable)"
    ok "$how: $esp ESP and $ah AH packets reached gw2 and went unanswered ($suppressed answers held back); no cleartext"
}
stop_encd gw2
quiet "encd stopped"
start_encd gw2 "$IT_TMP/gw2.conf"
on h1 ping -c 1 -W 3 198.18.2.20 >/dev/null || fail "no ping after gw2's encd restarted"
kill -KILL "$(encd_pid gw2)"
sleep 0.5
quiet "encd killed"
