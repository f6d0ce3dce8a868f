#!/usr/bin/env bash
# ipsec.use_fail_open: h1 — gw1 — internet — gw2 — h2, encd on both gateways, one ESP
# SA pair. The host pair 198.18.1.10 <-> 198.18.2.20 has a `use` flow, the host pair
# 198.18.1.11 <-> 198.18.2.21 a `require` flow. gw1 reads `set ipsec.use_fail_open 1`
# from its file, gw2 gets it at run time from encctl (the table is re-installed).
# While encd runs both pairs go through ESP. After `kill -9` of gw1's encd the use
# pair's packets leave gw1 in cleartext and the require pair's do not leave at all;
# with gw2's encd killed too, the use pair's ping goes through in cleartext both ways
# and the require pair's ping fails, with no cleartext of it on the internet link.
# Restarted with the default (use_fail_open 0), the same kills stop both pairs.
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}

ns h1; ns gw1; ns gw2; ns h2
link h1 eth0 198.18.1.10/24,198.18.1.11/24 gw1 lan 198.18.1.1/24
link gw1 wan 192.0.2.1/24 gw2 wan 192.0.2.2/24
link gw2 lan 198.18.2.1/24 h2 eth0 198.18.2.20/24,198.18.2.21/24
router gw1; router gw2
on h1 ip route add default via 198.18.1.1
on h2 ip route add default via 198.18.2.1
on gw1 ip route add default via 192.0.2.2
on gw2 ip route add default via 192.0.2.1

USE_FILTER='icmp and host 198.18.1.10 and host 198.18.2.20'
REQ_FILTER='icmp and host 198.18.1.11 and host 198.18.2.21'

# conf GW FAILOPEN: gw's file; FAILOPEN 1 adds `set ipsec.use_fail_open 1`.
conf() {
    local gw=$1 me peer a b
    if [[ $gw == gw1 ]]; then me=1; peer=2; a=1; b=2; else me=2; peer=1; a=2; b=1; fi
    {
        [[ $2 == 1 ]] && echo "set ipsec.use_fail_open 1"
        cat <<CONF
flow esp from 198.18.$a.$((a * 10)) to 198.18.$b.$((b * 10)) local 192.0.2.$me peer 192.0.2.$peer type use
flow esp from 198.18.$a.$((a * 10 + 1)) to 198.18.$b.$((b * 10 + 1)) local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    } >"$IT_TMP/$gw.conf"
}

# restart GW: starts encd again on GW's file (after a kill; same state directory).
restart() {
    [[ -e "$IT_TMP/$1-encd.log" ]] && mv "$IT_TMP/$1-encd.log" "$IT_TMP/$1-encd-$(date +%s%N).log"
    start_encd "$1" "$IT_TMP/$1.conf"
}

kill9() {
    local pid; pid=$(encd_pid "$1")
    kill -KILL "$pid"
    { wait "$pid"; } 2>/dev/null || true
    ! kill -0 "$pid" 2>/dev/null || fail "encd on $1 survived SIGKILL"
    on "$1" nft list table inet encd >/dev/null 2>&1 || fail "$1: the killed encd's table is gone"
}

use_ping() { on h1 ping -c "$1" -i 0.2 -W 1 -I 198.18.1.10 198.18.2.20 >/dev/null 2>&1; }
req_ping() { on h1 ping -c "$1" -i 0.2 -W 1 -I 198.18.1.11 198.18.2.21 >/dev/null 2>&1; }
count() { tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l; }
# table GW: encd's table on GW in nft syntax (nft's notes about xt targets dropped).
table() { on "$1" nft list table inet encd 2>/dev/null || fail "$1: nft cannot list table inet encd"; }

# --- use_fail_open 1: gw1 from its file, gw2 at run time -------------------------------
conf gw1 1; conf gw2 0
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
table gw2 | has flows_use4 && fail "gw2 has flows_use4 with use_fail_open 0"
"$ENCCTL" -S "$IT_TMP/gw2/run/encd.sock" -T ipsec.use_fail_open=1 >/dev/null || fail "encctl -T ipsec.use_fail_open=1 on gw2"
grep -q "re-installed (.*use_fail_open 1" "$IT_TMP/gw2-encd.log" || fail "gw2 did not re-install its table: $(tail -3 "$IT_TMP/gw2-encd.log")"
for gw in gw1 gw2; do
    set_text=$(on $gw nft list set inet encd flows_use4 2>/dev/null)
    if [[ $gw == gw1 ]]; then want='198.18.1.10 . 198.18.2.20'; else want='198.18.2.20 . 198.18.1.10'; fi
    grep -q "$want" <<<"$set_text" || fail "$gw flows_use4 lacks the use pair: $set_text"
    grep -qE '198\.18\.[12]\.(11|21)' <<<"$set_text" && fail "$gw flows_use4 holds the require pair: $set_text"
    [[ $(table $gw | grep -c '@flows_use4') -eq 2 ]] || fail "$gw: no flows_use4 rule in spd_output and spd_forward"
done
ok "use_fail_open 1: flows_use4 holds only the use pair on gw1 (file) and gw2 (encctl -T, table re-installed)"

capture gw1 wan "$IT_TMP/running.pcap"
use_ping 3 || fail "use pair ping while encd runs"
req_ping 3 || fail "require pair ping while encd runs"
stop_capture gw1 wan
clear=$(count "$IT_TMP/running.pcap" icmp); esp=$(count "$IT_TMP/running.pcap" esp)
[[ $clear -eq 0 && $esp -ge 12 ]] || fail "while encd runs: $clear cleartext ICMP, $esp ESP on the internet link"
ok "encd running: both pairs through ESP ($esp ESP packets, no cleartext)"

# gw1's encd killed: the use pair leaves gw1 in cleartext (gw2 answers through ESP,
# which gw1 cannot take without encd); the require pair does not leave gw1.
kill9 gw1
capture gw1 wan "$IT_TMP/gw1-killed.pcap"
use_ping 3 || true
req_ping 3 && fail "require pair ping passed with gw1's encd killed"
stop_capture gw1 wan
use_out=$(count "$IT_TMP/gw1-killed.pcap" "$USE_FILTER and src 198.18.1.10 and icmp[0] == 8")
req_any=$(count "$IT_TMP/gw1-killed.pcap" "$REQ_FILTER")
esp_out=$(count "$IT_TMP/gw1-killed.pcap" "esp and src 192.0.2.1")
[[ $use_out -ge 3 ]] || fail "gw1 killed: $use_out cleartext echo requests of the use pair on the internet link (want 3)"
[[ $req_any -eq 0 && $esp_out -eq 0 ]] || fail "gw1 killed: $req_any cleartext packets of the require pair, $esp_out ESP from gw1"
ok "gw1's encd killed: $use_out use echo requests left in cleartext, nothing of the require pair, no ESP from gw1"

# Both killed: the use pair works in cleartext both ways, the require pair not at all.
kill9 gw2
capture gw1 wan "$IT_TMP/both-killed.pcap"
use_ping 3 || fail "use pair ping with both encd killed and use_fail_open 1"
req_ping 3 && fail "require pair ping passed with both encd killed"
stop_capture gw1 wan
use_any=$(count "$IT_TMP/both-killed.pcap" "$USE_FILTER")
req_any=$(count "$IT_TMP/both-killed.pcap" "$REQ_FILTER")
esp=$(count "$IT_TMP/both-killed.pcap" esp)
[[ $use_any -ge 6 ]] || fail "both killed: only $use_any cleartext packets of the use pair"
[[ $req_any -eq 0 && $esp -eq 0 ]] || fail "both killed: $req_any cleartext packets of the require pair, $esp ESP"
ok "both encd killed: use pair ping in cleartext ($use_any packets), require pair dropped, none of it on the wire"

# --- use_fail_open 0 (the default): the same kills stop both pairs ---------------------
conf gw1 0; conf gw2 0
restart gw1; restart gw2
for gw in gw1 gw2; do
    table $gw | has flows_use && fail "$gw has flows_use with use_fail_open 0"
done
# Both crashed: each side's sequence numbers jumped above its old reservation, and the
# first authentic packet beyond what the receiver recorded as acceptable waits for that
# record (dropped meanwhile, counted as esp_replay_state_pending).
use_ping 1 || true; req_ping 1 || true
capture gw1 wan "$IT_TMP/default-running.pcap"
use_ping 3 || fail "use pair ping after the restart"
req_ping 3 || fail "require pair ping after the restart"
stop_capture gw1 wan
clear=$(count "$IT_TMP/default-running.pcap" icmp); esp=$(count "$IT_TMP/default-running.pcap" esp)
[[ $clear -eq 0 && $esp -ge 12 ]] || fail "restarted: $clear cleartext ICMP, $esp ESP on the internet link"
ok "restarted with use_fail_open 0: both pairs through ESP again"

kill9 gw1; kill9 gw2
capture gw1 wan "$IT_TMP/default-killed.pcap"
use_ping 3 && fail "use pair ping passed with both encd killed and use_fail_open 0"
req_ping 3 && fail "require pair ping passed with both encd killed and use_fail_open 0"
stop_capture gw1 wan
clear=$(count "$IT_TMP/default-killed.pcap" icmp); esp=$(count "$IT_TMP/default-killed.pcap" esp)
[[ $clear -eq 0 && $esp -eq 0 ]] || fail "use_fail_open 0, both killed: $clear cleartext ICMP, $esp ESP on the internet link"
ok "use_fail_open 0: with encd killed both pairs fail closed, nothing on the internet link"
