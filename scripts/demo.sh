#!/usr/bin/env bash
# The demo: two sites joined by encd on the real kernel, inside network namespaces, one
# gateway behind a masquerading NAT router (ESP inside UDP 4500, RFC 3948):
#
#   h1 198.18.1.10 — gw1 (198.19.0.2) — nat (masquerade, 192.0.2.1) — internet — (192.0.2.2) gw2 — h2 198.18.2.20
#
# The embedded default is Rules/examples/nat-traversal as an administrator would use
# it: ipsec.conf on gw1 (behind the NAT), peer.conf on gw2, keys made by the commands
# in their headers, and rules.nft on both gateways (the administrator's filter, which
# counts the cleartext on enc0). h1 pings h2 and sends it a file over TCP; the demo
# shows what the internet link carried, the counters on enc0, and what `encctl -s all`,
# `encstat -s -p esp` and `encstat -rn` print on gw1; then everything is removed.
#
#   scripts/demo.sh               installs what it needs, builds, runs
#   scripts/demo.sh --no-setup    runs only (Tests/Integration/demo_test.sh)
# Everything lives in namespaces named encd-it-<pid>-*, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
if [[ ${1:-} != --no-setup ]]; then
    ./scripts/install-deps.sh
    swift build 2>&1 | tail -1
fi
BIN=$PWD/.build/debug
EXAMPLE=$PWD/Rules/examples/nat-traversal

source Tests/Integration/lib.sh
ns h1; ns gw1; ns nat; ns gw2; ns h2
link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
link gw1 wan 198.19.0.2/24 nat in 198.19.0.1/24
link nat out 192.0.2.1/24 gw2 wan 192.0.2.2/24
link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24
router gw1; router nat; router gw2
on h1 ip route add default via 198.18.1.1
on h2 ip route add default via 198.18.2.1
on gw1 ip route add default via 198.19.0.1
on gw2 ip route add default via 192.0.2.1
on nat nft -f - <<'NFT'
table ip natbox {
    chain post { type nat hook postrouting priority srcnat; policy accept;
        oifname "out" masquerade
    }
}
NFT

# The example's files, as an administrator installs them: one key set, made once with
# the commands in the file's header and copied to both gateways; files mode 0600.
mkdir -m 0700 "$IT_TMP/keys"
sed -n 's/^# keys: //p' "$EXAMPLE/ipsec.conf" | (cd "$IT_TMP" && umask 077 && bash -e)
for gw in gw1 gw2; do
    mkdir -m 0700 -p "$IT_TMP/etc-$gw"
    cp -r "$IT_TMP/keys" "$IT_TMP/etc-$gw/"
done
install -m 0600 "$EXAMPLE/ipsec.conf" "$IT_TMP/etc-gw1/ipsec.conf"
install -m 0600 "$EXAMPLE/peer.conf" "$IT_TMP/etc-gw2/ipsec.conf"
# rules.nft with this network's interface names, peer and sites.
rules() {   # GW PEER_GW LOCAL_NET PEER_NET
    sed -e 's/^define WAN = .*/define WAN = "wan"/' -e 's/^define LAN = .*/define LAN = "lan"/' \
        -e "s|^define PEER_GW = .*|define PEER_GW = $2|" -e "s|^define LOCAL_NET = .*|define LOCAL_NET = $3|" \
        -e "s|^define PEER_NET = .*|define PEER_NET = $4|" "$EXAMPLE/rules.nft" | on "$1" nft -f -
}
rules gw1 192.0.2.2 198.18.1.0/24 198.18.2.0/24
rules gw2 192.0.2.1 198.18.2.0/24 198.18.1.0/24

echo "== gw1's /etc/encd/ipsec.conf (Rules/examples/nat-traversal/ipsec.conf, behind the NAT)"
grep -v '^#' "$IT_TMP/etc-gw1/ipsec.conf" | sed '/^$/d'
echo; echo "== gw2's (peer.conf, public)"
grep -v '^#' "$IT_TMP/etc-gw2/ipsec.conf" | sed '/^$/d'
start_encd gw1 "$IT_TMP/etc-gw1/ipsec.conf"
start_encd gw2 "$IT_TMP/etc-gw2/ipsec.conf"
capture gw2 wan "$IT_TMP/internet.pcap"

echo; echo "== h1 pings h2 through the tunnel (h1's side speaks first: gw2 learns the NAT's port)"
on h1 ping -c 4 -i 0.3 -W 2 198.18.2.20 || fail "no ping through the tunnel"
echo; echo "== h1 sends h2 1 MB over TCP"
tcp_transfer h1 h2 198.18.2.20 1048576
echo "1048576 bytes arrived intact"
stop_capture gw2 wan

echo; echo "== what the internet link carried (at gw2), the first lines"
tcpdump -n -r "$IT_TMP/internet.pcap" 'not arp and not ip6' >"$IT_TMP/internet.txt" 2>/dev/null
sed -n 1,6p "$IT_TMP/internet.txt"
total=$(tcpdump -n -r "$IT_TMP/internet.pcap" 2>/dev/null | wc -l)
natt=$(tcpdump -n -r "$IT_TMP/internet.pcap" 'udp port 4500' 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$IT_TMP/internet.pcap" 'net 198.18.0.0/16' 2>/dev/null | wc -l)
echo "$total packets: $natt ESP in UDP 4500, $clear with a site address in the clear"
((natt > 0 && clear == 0)) || fail "the internet link carried cleartext between the sites"

echo; echo "== the administrator's rules on gw1 (Rules/examples/nat-traversal/rules.nft): cleartext on enc0"
on gw1 nft list chain inet natt_gateway forward | grep 'comment "cleartext'
out=$(nft_counter gw1 natt_gateway forward "cleartext out through enc0")
in=$(nft_counter gw1 natt_gateway forward "cleartext in through enc0")
((out > 0 && in > 0)) || fail "the rules on enc0 saw no cleartext ($out out, $in in)"

sock=$IT_TMP/gw1/run/encd.sock
echo; echo "== gw1# encctl -s all"
on gw1 "$BIN/encctl" -S "$sock" -s all
echo; echo "== gw1# encstat -s -p esp"
on gw1 "$BIN/encstat" -S "$sock" -s -p esp | tee "$IT_TMP/esp.txt"
grep -qE '^\s+[1-9][0-9]* input UDP encapsulated ESP packets' "$IT_TMP/esp.txt" || fail "encstat counted no ESP in UDP"
echo; echo "== gw1# encstat -rn"
on gw1 "$BIN/encstat" -S "$sock" -rn

echo; echo "demo: done; stopping encd and removing the namespaces"
