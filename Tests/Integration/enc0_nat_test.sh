#!/usr/bin/env bash
# NAT on enc0 between two sites that use the same inside subnet.
#
#   h1 198.18.100.10 — gw1 192.0.2.1 — internet — gw2 192.0.2.2 — h2 198.18.100.20
#        site 1: 198.18.100.0/24            site 2: 198.18.100.0/24 (the same!)
#
# Neither site can route to the other's real addresses, so each gateway presents its
# site to the tunnel under a range of its own, by NAT on enc0 (as pf does on OpenBSD's
# enc0):
#   site 1 appears in the tunnel as 198.18.101.0/24 (gw1 translates),
#   site 2 appears in the tunnel as 198.18.102.0/24 (gw2 translates).
# Inside the tunnel a packet from h1 to h2 is 198.18.101.10 -> 198.18.102.20; h1 talks
# to h2 as 198.18.102.20 and h2 sees h1 as 198.18.101.10.
#
# Where encd looks at a packet, and what it sees there (OpenBSD's order,
# UL/R -> [X] -> NAT(enc0) -> IPsec -> IF; netfilter priorities in Rules/README.md):
#
#   outbound, at gw1:  h1 sends 198.18.100.10 -> 198.18.102.20
#     prerouting  dstnat (-100)  nothing (the packet does not come from enc0)
#     prerouting  [X]    (-90)   SPD lookup on 198.18.100.10 -> 198.18.102.20
#                                = this site's REAL addresses -> the peer site's
#                                  PRESENTED addresses; protect => routed into enc0
#     postrouting srcnat (100)   oifname enc0: source 198.18.100.10 -> 198.18.101.10
#     postrouting IPsec  (110)   ESP with the SA [X] chose; the inner packet is
#                                198.18.101.10 -> 198.18.102.20
#   inbound, at gw2:   encd decrypts and writes the inner packet into enc0
#     prerouting  dstnat (-100)  iifname enc0: destination 198.18.102.20 -> 198.18.100.20
#     prerouting  [X]    (-90)   inbound check on 198.18.101.10 -> 198.18.100.20
#                                = the peer site's PRESENTED addresses -> this site's
#                                  REAL addresses; it must match an inbound flow bound
#                                  to the SA that carried the packet, else it is dropped
#   Replies need no rules of their own: conntrack undoes both translations (the
#   reply's destination at gw1's dstnat hook, its source at gw2's srcnat hook), so the
#   reply h2 -> h1 is 198.18.100.20 -> 198.18.101.10 at gw2's [X] and
#   198.18.102.20 -> 198.18.100.10 at gw1's inbound check: the same two flows.
#
# So each gateway needs ONE flow, written with its own real subnet and the peer's
# presented subnet:
#   gw1: flow esp from 198.18.100.0/24 to 198.18.102.0/24 peer 192.0.2.2
#   gw2: flow esp from 198.18.100.0/24 to 198.18.101.0/24 peer 192.0.2.1
# Without a direction a flow makes the outbound flow (checked at [X], before srcnat on
# enc0) and its mirror, the inbound flow (checked after dstnat on enc0) — exactly the
# two views above. Writing the flow with the presented local range (198.18.101.0/24
# on gw1) would be wrong: [X] runs before srcnat and would never see those addresses,
# and the inbound check runs after dstnat and would never see them either.
#
# Asserts: ping h1 -> h2 (198.18.102.20) and h2 -> h1 (198.18.101.10), a 2 MB TCP
# transfer h1 -> h2; h2 sees h1 only as 198.18.101.10 and h1 sees h2 only as
# 198.18.102.20; the internet link carries only ESP; and the inbound check is real: when
# gw2's translation is missing for h2, its packets reach gw1 through the SA with the
# source 198.18.100.20 — an address of gw1's own site — and gw1 drops them ("inbound
# policy:" in its log), h1 never sees them.
source "$(dirname "$0")/lib.sh"

ns h1; ns gw1; ns gw2; ns h2
link h1 eth0 198.18.100.10/24 gw1 lan 198.18.100.1/24
link gw1 wan 192.0.2.1/24 gw2 wan 192.0.2.2/24
link gw2 lan 198.18.100.1/24 h2 eth0 198.18.100.20/24
router gw1; router gw2
on h1 ip route add default via 198.18.100.1
on h2 ip route add default via 198.18.100.1
on gw1 ip route add default via 192.0.2.2
on gw2 ip route add default via 192.0.2.1

# gw<me> presents its site 198.18.100.0/24 as 198.18.10<me>.0/24; the peer's site is
# 198.18.10<peer>.0/24 as the peer presents it.
for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
# Site $me (198.18.100.0/24, presented as 198.18.10$me.0/24) to site $peer (presented
# as 198.18.10$peer.0/24). Outbound: real local -> presented remote, before srcnat on
# enc0. Inbound (the mirror): presented remote -> real local, after dstnat on enc0.
flow esp from 198.18.100.0/24 to 198.18.10$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    # The administrator's NAT on enc0 (standard nat priorities: dstnat -100 before
    # [X] at -90, srcnat 100 before IPsec at 110). Only new connections consult these
    # rules; conntrack translates their replies.
    on $gw nft -f - <<NFT
table ip sitenat {
    chain pre { type nat hook prerouting priority dstnat; policy accept;
        iifname "enc0" dnat ip prefix to ip daddr map { 198.18.10$me.0/24 : 198.18.100.0/24 }
    }
    chain post { type nat hook postrouting priority srcnat; policy accept;
        oifname "enc0" snat ip prefix to ip saddr map { 198.18.100.0/24 : 198.18.10$me.0/24 }
    }
}
NFT
    start_encd $gw "$IT_TMP/$gw.conf"
done

# What the hosts see: echo requests by source address.
for h in h1 h2; do
    on $h nft -f - <<'NFT'
table inet seen {
    chain input { type filter hook input priority 0; policy accept;
        icmp type echo-request ip saddr 198.18.101.10 counter comment "from-h1-presented"
        icmp type echo-request ip saddr 198.18.102.20 counter comment "from-h2-presented"
        icmp type echo-request ip saddr 198.18.100.0/24 counter comment "from-own-subnet"
    }
}
NFT
done

capture gw1 wan "$IT_TMP/wan.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.102.20 >/dev/null || fail "ping h1 -> h2 at its presented address 198.18.102.20"
ok "ping h1 -> 198.18.102.20 (h2 as site 2 presents it), replies back"
on h2 ping -c 3 -i 0.2 -W 2 198.18.101.10 >/dev/null || fail "ping h2 -> h1 at its presented address 198.18.101.10"
ok "ping h2 -> 198.18.101.10 (h1 as site 1 presents it), replies back"

tcp_transfer h1 h2 198.18.102.20 2000000
ok "TCP 2 MB h1 -> 198.18.102.20, bytes intact"
stop_capture gw1 wan

# Each host saw the other only under its presented address, never its real one.
[[ $(nft_counter h2 seen input from-h1-presented) -eq 3 ]] || fail "h2 did not see h1's 3 echo requests from 198.18.101.10"
[[ $(nft_counter h1 seen input from-h2-presented) -eq 3 ]] || fail "h1 did not see h2's 3 echo requests from 198.18.102.20"
for h in h1 h2; do
    [[ $(nft_counter $h seen input from-own-subnet) -eq 0 ]] || fail "$h saw echo requests from its own subnet"
done
ok "h2 sees h1 as 198.18.101.10, h1 sees h2 as 198.18.102.20"

clear=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'icmp or tcp' 2>/dev/null | wc -l)
other=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'ip and not esp' 2>/dev/null | wc -l)
esp=$(tcpdump -n -r "$IT_TMP/wan.pcap" 'esp' 2>/dev/null | wc -l)
[[ $clear -eq 0 ]] || fail "$clear cleartext packets on the internet link"
[[ $other -eq 0 ]] || fail "$other IPv4 packets on the internet link that are not ESP"
[[ $esp -gt 1000 ]] || fail "only $esp ESP packets on the internet link"
ok "internet link: $esp ESP packets, nothing else"

# The inbound check is real. gw2's admin exempts h2 from the translation (a mistake,
# or a hostile peer): h2's packets now enter the tunnel as 198.18.100.20 ->
# 198.18.101.10 — gw2's flow from 198.18.100.0/24 still sends them through the SA.
# At gw1, dstnat makes them 198.18.100.20 -> 198.18.100.10: a packet claiming to come
# from gw1's own site. No inbound flow of the SA covers that source (gw1's inbound
# flow is from 198.18.102.0/24), so encd drops it at the check and h1 never sees it.
on gw2 nft insert rule ip sitenat post oifname "enc0" ip saddr 198.18.100.20 accept
if on h2 ping -c 3 -i 0.2 -W 1 198.18.101.10 >/dev/null; then
    fail "ping h2 -> h1 got replies although gw2 sent h2's real address through the SA"
fi
[[ $(nft_counter h1 seen input from-own-subnet) -eq 0 ]] \
    || fail "h1 received echo requests from its own subnet through the tunnel"
grep -q "inbound policy: 198.18.100.20 -> 198.18.100.10 proto 1 arrived on esp spi 0x00001001 from 192.0.2.2" \
    "$IT_TMP/gw1-encd.log" || fail "gw1 logged no inbound policy drop for 198.18.100.20 -> 198.18.100.10"
ok "untranslated 198.18.100.20 through the SA dropped by gw1's inbound check, never reached h1"

# And with the translation restored, h2 reaches h1 again.
on gw2 nft flush chain ip sitenat post
on gw2 nft add rule ip sitenat post oifname "enc0" snat ip prefix to ip saddr map { 198.18.100.0/24 : 198.18.102.0/24 }
on gw2 conntrack -F >/dev/null 2>&1
on h2 ping -c 3 -i 0.2 -W 2 198.18.101.10 >/dev/null || fail "ping h2 -> h1 after restoring gw2's translation"
ok "translation restored: h2 reaches h1 again"
