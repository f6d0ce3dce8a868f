#!/usr/bin/env bash
# Site to site: h1 — gw1 — internet — gw2 — h2, encd on both gateways, ESP tunnel with
# AES-GCM (IPv4) and AES-CBC+HMAC-SHA2-256 (IPv6). Ping and a TCP transfer from h1 to
# h2; the internet link carries only ESP; the admin's nft counters on enc0 count the
# cleartext.
source "$(dirname "$0")/lib.sh"

ns h1; ns gw1; ns gw2; ns h2
link h1 eth0 198.18.1.10/24,2001:db8:1::10/64 gw1 lan 198.18.1.1/24,2001:db8:1::1/64
link gw1 wan 192.0.2.1/24,2001:db8:ff::1/64 gw2 wan 192.0.2.2/24,2001:db8:ff::2/64
link gw2 lan 198.18.2.1/24,2001:db8:2::1/64 h2 eth0 198.18.2.20/24,2001:db8:2::20/64
router gw1; router gw2
on h1 ip route add default via 198.18.1.1; on h1 ip -6 route add default via 2001:db8:1::1
on h2 ip route add default via 198.18.2.1; on h2 ip -6 route add default via 2001:db8:2::1
on gw1 ip route add default via 192.0.2.2; on gw1 ip -6 route add default via 2001:db8:ff::2
on gw2 ip route add default via 192.0.2.1; on gw2 ip -6 route add default via 2001:db8:ff::1

for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; mine=1; theirs=2; else me=2; peer=1; mine=2; theirs=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
# site $mine to site $theirs
flow esp from 198.18.$mine.0/24 to 198.18.$theirs.0/24 local 192.0.2.$me peer 192.0.2.$peer
flow esp from 2001:db8:$mine::/64 to 2001:db8:$theirs::/64 local 2001:db8:ff::$me peer 2001:db8:ff::$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
esp tunnel from 2001:db8:ff::1 to 2001:db8:ff::2 spi 0x2000:0x2001 auth hmac-sha2-256 enc aes-128 \\
    authkey $AUTH_A:$AUTH_B enckey $CBC_A:$CBC_B
CONF
    # The administrator's own rules on enc0: count what passes in cleartext.
    on $gw nft -f - <<'NFT'
table inet admin {
    chain filter_enc { type filter hook forward priority 0; policy accept;
        oifname "enc0" counter comment "out-enc0"
        iifname "enc0" counter comment "in-enc0"
    }
}
NFT
    start_encd $gw "$IT_TMP/$gw.conf"
done

capture gw1 wan "$IT_TMP/wan.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "IPv4 ping h1 -> h2"
ok "IPv4 ping through the AES-GCM tunnel"
on h1 ping -6 -c 3 -i 0.2 -W 2 2001:db8:2::20 >/dev/null || fail "IPv6 ping h1 -> h2"
ok "IPv6 ping through the AES-CBC+HMAC-SHA2-256 tunnel"

# MTU: enc0's MTU leaves room for the SAs' overhead, so an oversized packet with DF
# gets "fragmentation needed" / "packet too big" from gw1 instead of vanishing.
mtu=$(on gw1 cat /sys/class/net/enc0/mtu)
[[ $mtu -lt 1500 && $mtu -ge 1280 ]] || fail "enc0 MTU $mtu"
out=$(on h1 ping -M do -c 1 -W 2 -s 1472 198.18.2.20 2>&1 || true)
grep -qiE "frag needed|message too long|mtu" <<<"$out" || fail "no fragmentation-needed for a 1500-byte DF packet: $out"
on h1 ping -M do -c 2 -W 2 -s $((mtu - 28)) 198.18.2.20 >/dev/null || fail "a packet of enc0's MTU with DF did not pass"
out6=$(on h1 ping -6 -c 1 -W 2 -s 1452 2001:db8:2::20 2>&1 || true)
on h1 ping -6 -c 1 -W 2 -s 1452 2001:db8:2::20 >/dev/null 2>&1 || true
on h1 ip -6 route get 2001:db8:2::20 | has "mtu $mtu" || fail "IPv6: h1 learned no path MTU from gw1's packet too big: $(on h1 ip -6 route get 2001:db8:2::20)"
ok "enc0 MTU $mtu: DF packets above it get ICMP fragmentation needed (IPv4) / packet too big (IPv6)"
# Without DF, a packet larger than enc0's MTU is fragmented (gw1's conntrack reassembles
# h1's fragments, then the kernel fragments again for enc0) and each fragment is protected.
on h1 ping -M dont -c 3 -i 0.2 -W 2 -s 3000 198.18.2.20 >/dev/null || fail "3000-byte IPv4 ping without DF through the tunnel"
ok "IPv4 without DF above enc0's MTU: fragmented for enc0, protected, answered"

# TCP: 2 MB from h1 to h2 over each family, bytes checked.
for dst in 198.18.2.20 2001:db8:2::20; do
    tcp_transfer h1 h2 "$dst" 2000000
    ok "TCP 2 MB to $dst, bytes intact"
done
stop_capture gw1 wan

clear=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'icmp or icmp6[0] == 128 or icmp6[0] == 129 or tcp' 2>/dev/null | wc -l)
esp=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'esp' 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear cleartext packets on the internet link"
[[ $esp -gt 1000 ]] || fail "only $esp ESP packets on the internet link"
ok "internet link: $esp ESP packets, no cleartext"

for gw in gw1 gw2; do
    o=$(nft_counter $gw admin filter_enc out-enc0); i=$(nft_counter $gw admin filter_enc in-enc0)
    [[ ${o:-0} -gt 0 && ${i:-0} -gt 0 ]] || fail "$gw enc0 counters out=$o in=$i"
    ok "$gw: admin's nft rules saw $o packets out and $i in on enc0 in cleartext"
done
