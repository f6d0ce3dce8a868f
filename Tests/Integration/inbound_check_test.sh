#!/usr/bin/env bash
# The inbound check cannot be skipped by a mark (issue #7's further findings):
#   h1 198.18.1.10 — gw1 — internet — gw2 — h2 198.18.2.20 (and 198.18.7.7)
# gw1 expects only 198.18.2.0/24 through the SA from gw2. gw2 (which the test makes
# misbehave: its flows also cover 198.18.7.0/24) sends h2's packets from 198.18.7.7
# through the same SA. gw1's administrator restores marks from conntrack (here, at
# its crudest: every packet out of enc0 gets encd's BYPASS bit before encd sees it,
# as `meta mark set ct mark` does for a connection encd once marked). A decrypted
# packet must still meet the inbound check: the one from 198.18.7.7 is dropped and
# counted (esp_policy_mismatch), the one from 198.18.2.20 passes.
source "$(dirname "$0")/lib.sh"
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
on h2 ip addr add 198.18.7.7/24 dev eth0
cat >"$IT_TMP/gw1.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
cat >"$IT_TMP/gw2.conf" <<CONF
flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1
flow esp out from 198.18.7.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
on gw1 nft -f - <<'NFT'
table inet admin {
    chain restore { type filter hook prerouting priority -150; policy accept;
        iifname "enc0" meta mark set meta mark | 0x00010000 counter comment "restored mark"
    }
}
NFT
mismatch() {
    on gw1 "$ENCSTAT" -S "$IT_TMP/gw1/run/encd.sock" -s -p esp -j | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["esp_policy_mismatch"])'
}
before=$(mismatch)
capture gw1 lan "$IT_TMP/lan.pcap"
on h2 ping -c 3 -i 0.2 -W 1 -I 198.18.7.7 198.18.1.10 >/dev/null 2>&1 || true
on h2 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null 2>&1 || true
on h2 ping -c 3 -i 0.2 -W 2 198.18.1.10 >"$IT_TMP/good.out" 2>&1 || fail "h2 (in gw1's flow) cannot reach h1: $(tail -1 "$IT_TMP/good.out")"
stop_capture gw1 lan
restored=$(nft_counter gw1 admin restore "restored mark")
[[ ${restored:-0} -ge 6 ]] || fail "the admin's rule marked only ${restored:-0} packets out of enc0"
leaked=$(tcpdump -n -r "$IT_TMP/lan.pcap" 'icmp and src host 198.18.7.7' 2>/dev/null | wc -l)
[[ $leaked -eq 0 ]] || fail "$leaked packets from 198.18.7.7 (outside gw1's flows) reached h1's link: the mark skipped the inbound check"
after=$(mismatch)
[[ $((after - before)) -ge 3 ]] || fail "esp_policy_mismatch moved by $((after - before)), want 3"
ok "with BYPASS set on every packet out of enc0: the 3 packets from outside the SA's flows were dropped (esp_policy_mismatch +$((after - before))), h2's own pings answered"
