#!/usr/bin/env bash
# The demo: two sites joined by encd on the real kernel, inside network namespaces.
#
#   h1 (198.18.1.10) — gw1 — internet 192.0.2.0/24 — gw2 — h2 (198.18.2.20)
#
# Installs what it needs, builds encd, starts it on both gateways with the embedded
# configuration below, pings h2 from h1, and shows what the internet link carried
# (ESP only), what the administrator's rules on enc0 saw (cleartext), and encd's log.
# Everything lives in namespaces named encd-it-<pid>-*, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
./scripts/install-deps.sh
swift build --product encd 2>&1 | tail -1

source Tests/Integration/lib.sh
sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

# The embedded default (OpenBSD ipsec.conf syntax), one file per gateway: the flow
# names this gateway's site and the other's; the SA pair is the same on both ends.
for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; them=2; else me=2; them=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
local_gw = "192.0.2.$me"
peer_gw = "192.0.2.$them"
flow esp from 198.18.$me.0/24 to 198.18.$them.0/24 local \$local_gw peer \$peer_gw
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm replay 64 \\
    enckey $KEY_A:$KEY_B
CONF
done
for gw in gw1 gw2; do
    on $gw nft -f - <<'NFT'
table inet admin {
    chain filter_enc { type filter hook forward priority 0; policy accept;
        oifname "enc0" counter comment "cleartext out through enc0"
        iifname "enc0" counter comment "cleartext in through enc0"
    }
}
NFT
done
echo; echo "== gw1's ipsec.conf"; sed "s/0x[0-9a-f]\{16,\}/0x…(key)/g" "$IT_TMP/gw1.conf"
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
capture gw1 wan "$IT_TMP/wan.pcap"
echo; echo "== h1 pings h2 through the tunnel"
on h1 ping -c 4 -i 0.3 198.18.2.20
stop_capture gw1 wan
echo; echo "== what the internet link carried"
tcpdump -n -r "$IT_TMP/wan.pcap" 2>/dev/null | head -8
echo; echo "== the administrator's rules on gw1's enc0 (cleartext, before encryption / after decryption)"
on gw1 nft list chain inet admin filter_enc | grep counter
echo; echo "== encd's log on gw1"
cat "$IT_TMP/gw1-encd.log"
echo; echo "demo: done (namespaces are removed now)"
