#!/usr/bin/env bash
# encd-iked against itself, host to host in transport mode (USE_TRANSPORT_MODE, RFC
# 7296 §1.3.1): two hosts on one link, each with encd and encd-iked, a policy covering
# every packet between their own addresses:
#   - IKE between them passes (encd-iked's bypass flows for UDP 500, its marked
#     sockets) although the require flows cover the hosts themselves
#   - the first ping acquires; the CHILD SA is installed in transport mode on both
#     (encd shows `esp transport`), ping and 1 MB of TCP pass as raw ESP between the
#     hosts' own addresses with the SPIs ikectl shows, nothing in the clear
#   - over IPv6 the same, with an inet6 policy beside the inet one
source "$(dirname "$0")/lib.sh"

IKED=${IKED:-$IT_ROOT/.build/debug/encd-iked}
IKECTL=${IKECTL:-$IT_ROOT/.build/debug/ikectl}
PSK="it-psk-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"

ns ha; ns hb
link ha eth0 192.0.2.1/24 hb eth0 192.0.2.2/24
on ha ip -6 addr add 2001:db8::1/64 dev eth0 nodad
on hb ip -6 addr add 2001:db8::2/64 dev eth0 nodad
for h in ha hb; do
    echo "# the SAs come from encd-iked" >"$IT_TMP/$h.conf"
    start_encd $h "$IT_TMP/$h.conf"
done

# iked_conf HOST MODE: transport mode between the two hosts, IPv4 and IPv6.
iked_conf() {
    local h=$1 mode=$2 me peer
    if [[ $h == ha ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$h-iked.conf" <<CONF
ikev2 "v4" $mode transport esp from 192.0.2.$me to 192.0.2.$peer local 192.0.2.$me peer 192.0.2.$peer \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm \\
    srcid h$me.example.org dstid h$peer.example.org psk "$PSK"
ikev2 "v6" $mode transport esp inet6 from 2001:db8::$me to 2001:db8::$peer local 2001:db8::$me peer 2001:db8::$peer \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm \\
    srcid h$me.example.org dstid h$peer.example.org psk "$PSK"
CONF
    chmod 600 "$IT_TMP/$h-iked.conf"
}
start_iked() {
    local h=$1
    ip netns exec "$IT_ID-$h" "$IKED" -d -v -f "$IT_TMP/$h-iked.conf" -S "$IT_TMP/$h/run/encd.sock" \
        -s "$IT_TMP/$h/run/iked.sock" >>"$IT_TMP/$h-iked.log" 2>&1 &
    local pid=$!
    IT_PIDS+=("$pid")
    for _ in $(seq 50); do
        grep -q "require flows installed" "$IT_TMP/$h-iked.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "encd-iked in $h exited: $(tail -5 "$IT_TMP/$h-iked.log")"
        sleep 0.1
    done
    fail "encd-iked in $h did not start"
}
spis() {   # spis HOST POLICY-ADDRESS: "IN OUT" of the CHILD SA whose selectors name the address
    local show; show=$(on "$1" "$IKECTL" -s "$IT_TMP/$1/run/iked.sock" show sa)
    awk -v from="from $2 " '/childsa spi in/ {spi = $4 " " $6} index($0, from) && spi != "" {print spi; exit}' <<<"$show"
}
wire_spis() { tcpdump -n -r "$1" esp 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort -u | tr '\n' ' '; }

iked_conf ha passive; iked_conf hb passive
start_iked ha; start_iked hb

# --- IPv4: the first ping acquires, then ping and TCP as transport-mode ESP
on ha ping -c 1 -W 1 192.0.2.2 >/dev/null 2>&1 || true
for _ in $(seq 50); do [[ -n $(spis ha 192.0.2.1) && -n $(spis hb 192.0.2.2) ]] && break; sleep 0.1; done
read -r in out <<<"$(spis ha 192.0.2.1)"
[[ -n $in ]] || fail "no CHILD SA at ha: $(tail -5 "$IT_TMP/ha-iked.log")"
grep -q "acquire for 192.0.2.1 -> 192.0.2.2" "$IT_TMP/ha-iked.log" || fail "ha's encd-iked saw no acquire"
for h in ha hb; do
    sas=$(on $h "$IT_ROOT/.build/debug/encctl" -S "$IT_TMP/$h/run/encd.sock" -s sa)
    [[ $(grep -c "^esp transport from" <<<"$sas") == 2 ]] || fail "$h: not two transport-mode SAs: $sas"
done
capture ha eth0 "$IT_TMP/v4.pcap"
on ha ping -c 3 -i 0.2 -W 2 192.0.2.2 >/dev/null || fail "ping ha -> hb over the CHILD SA"
tcp_transfer ha hb 192.0.2.2 1000000
stop_capture ha eth0
want=$(printf 'spi=%s\n' "$in" "$out" | sort -u | tr '\n' ' ')
[[ $(wire_spis "$IT_TMP/v4.pcap") == "$want" ]] || fail "ESP on the wire: $(wire_spis "$IT_TMP/v4.pcap"), ikectl: $in $out"
[[ -z $(tcpdump -n -r "$IT_TMP/v4.pcap" 'icmp or tcp' 2>/dev/null) ]] || fail "cleartext between the hosts"
[[ -z $(tcpdump -n -r "$IT_TMP/v4.pcap" 'esp and not (host 192.0.2.1 and host 192.0.2.2)' 2>/dev/null) ]] || fail "ESP between other addresses"
# Transport mode: the ESP packet carries the ICMP message, not a second IP header: 20
# (IP) + 8 (ESP header) + 8 (IV) + 64 (echo: 8 + 56 bytes of data) + 2 (trailer,
# padded to 68) + 16 (ICV) = 120 bytes; in a tunnel the inner IP header makes it 140.
esp=$(tcpdump -n -r "$IT_TMP/v4.pcap" -v 'esp and src 192.0.2.1' 2>/dev/null)
grep -q "proto ESP (50), length 120)" <<<"$esp" \
    || fail "the first ESP packets are not transport-mode echoes (IP lengths: $(grep -o 'length [0-9]*' <<<"$esp" | awk 'NR <= 3' | tr '\n' ' '))"
ok "IPv4 host to host: the first ping acquired, a transport-mode CHILD SA on both hosts; ping and 1 MB of TCP as raw ESP $in/$out between 192.0.2.1 and 192.0.2.2, nothing in the clear"

# --- IPv6
on ha ping -6 -c 1 -W 1 2001:db8::2 >/dev/null 2>&1 || true
for _ in $(seq 50); do [[ -n $(spis ha 2001:db8::1) ]] && break; sleep 0.1; done
read -r in6 out6 <<<"$(spis ha 2001:db8::1)"
[[ -n $in6 ]] || fail "no IPv6 CHILD SA at ha: $(tail -5 "$IT_TMP/ha-iked.log")"
capture ha eth0 "$IT_TMP/v6.pcap"
on ha ping -6 -c 3 -i 0.2 -W 2 2001:db8::2 >/dev/null || fail "ping6 ha -> hb over the CHILD SA"
tcp_transfer ha hb 2001:db8::2 1000000
stop_capture ha eth0
want=$(printf 'spi=%s\n' "$in6" "$out6" | sort -u | tr '\n' ' ')
[[ $(wire_spis "$IT_TMP/v6.pcap") == "$want" ]] || fail "ESP over IPv6: $(wire_spis "$IT_TMP/v6.pcap"), ikectl: $in6 $out6"
[[ -z $(tcpdump -n -r "$IT_TMP/v6.pcap" 'icmp6 and (ip6[40] = 128 or ip6[40] = 129)' 2>/dev/null) ]] || fail "cleartext echo over IPv6"
[[ -z $(tcpdump -n -r "$IT_TMP/v6.pcap" 'tcp' 2>/dev/null) ]] || fail "cleartext TCP over IPv6"
ok "IPv6 host to host: a second CHILD SA $in6/$out6 in transport mode carries ping6 and 1 MB of TCP as raw ESP"
grep -q "$PSK" "$IT_TMP"/*-iked.log "$IT_TMP"/*-encd.log && fail "the PSK is in a log"
ok "no PSK in any log"
