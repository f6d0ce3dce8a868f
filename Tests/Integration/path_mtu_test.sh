#!/usr/bin/env bash
# enc0's MTU follows the path to each peer. The internet link here has MTU 1400 (a
# PPPoE or tunnelled uplink is smaller than 1500), so ESP of a full enc0-sized packet
# would not fit it if encd assumed 1500: TCP would stall and esp_too_big would count.
# encd reads the path MTU to its peer (`ip route get`: the route's MTU metric or the
# interface's MTU), sets enc0's MTU below it, and follows a change within seconds.
#   h1 198.18.1.10 — gw1 — internet 192.0.2.0/24 (MTU 1400) — gw2 — h2 198.18.2.20
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
[[ -x $ENCSTAT ]] || fail "no encstat at $ENCSTAT (swift build --product encstat)"

sites
on gw1 ip link set wan mtu 1400
on gw2 ip link set wan mtu 1400
for gw in gw1 gw2; do
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.${gw#gw}.0/24 to 198.18.$((3 - ${gw#gw})).0/24 local 192.0.2.${gw#gw} peer 192.0.2.$((3 - ${gw#gw}))
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    start_encd $gw "$IT_TMP/$gw.conf"
done

# GCM tunnel over IPv4 adds at most 20 + 8 + 8 + 3 + 2 + 16 = 57 bytes.
mtu=$(on gw1 cat /sys/class/net/enc0/mtu)
[[ $mtu -eq $((1400 - 57)) ]] || fail "enc0's MTU is $mtu, $((1400 - 57)) expected (path MTU 1400 less 57)"
grep -q "enc0 MTU 1343" "$IT_TMP/gw1-encd.log" || fail "no log line for enc0's MTU: $(grep MTU "$IT_TMP/gw1-encd.log")"
ok "enc0's MTU is $mtu: the internet link's 1400 less the SA's 57 bytes"

# A full-sized TCP transfer: every segment must fit the 1400-byte link once protected.
tcp_transfer h1 h2 198.18.2.20 1000000
too_big=$(on gw1 "$ENCSTAT" -S "$IT_TMP/gw1/run/encd.sock" -s -p esp -j \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["esp_too_big"])')
[[ $too_big -eq 0 ]] || fail "$too_big ESP packets were too big for the internet link"
ok "TCP 1 MB h1 -> h2 over the 1400-byte link: bytes intact, no ESP packet too big"

# The path shrinks (a route with an MTU metric, as a learned path MTU gives): enc0 follows.
on gw1 ip route add 192.0.2.2/32 dev wan mtu 1360
for _ in $(seq 150); do
    mtu=$(on gw1 cat /sys/class/net/enc0/mtu)
    [[ $mtu -eq $((1360 - 57)) ]] && break
    sleep 0.1
done
[[ $mtu -eq $((1360 - 57)) ]] || fail "enc0's MTU is $mtu 15 s after the path shrank to 1360, $((1360 - 57)) expected"
on h1 ping -M do -c 1 -W 2 -s $((1360 - 57 - 28)) 198.18.2.20 >/dev/null || fail "ping of enc0's new MTU through the tunnel"
ok "the path to gw2 shrank to 1360: enc0's MTU followed to $mtu, and a ping of that size passes"
