#!/usr/bin/env bash
# encctl against a running encd: h1 — gw1 — gw2, encd on gw1 started with an empty
# configuration, driven only through encctl on its control socket.
#
# Asserts, with exact expected text: -s all empty; -f loads flows and SAs (also from
# stdin); -s flow / -s sa / -s all as ipsecctl prints them, with -v (details; the SA's
# age masked) and -k (keys only then); -d deletes what a file names; a broken file is
# refused with file:line:column and leaves the state as it was; -n checks without
# changing anything; -F flushes; -m shows an acquire for traffic on a require flow
# without an SA, an SA added, its soft and hard lifetime expiry, and the SA gone from
# -s sa afterwards; a non-root user gets "permission denied"; with encd stopped,
# "encd is not running" — each error one line with its exit status.
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}

ns h1; ns gw1; ns gw2
link h1 eth0 198.18.1.10/24 gw1 lan 198.18.1.1/24
link gw1 wan 192.0.2.1/24 gw2 wan 192.0.2.2/24
router gw1
on h1 ip route add default via 198.18.1.1
on gw1 ip route add default via 192.0.2.2

# encd on gw1 starts with nothing; encctl does the rest. Started here rather than with
# lib.sh's start_encd, whose `on ... &` records the PID of a subshell, not encd's (so
# stop_encd would leave encd running): `ip netns exec` execs encd in place.
echo "# empty" >"$IT_TMP/empty.conf"
mkdir -p "$IT_TMP/gw1/state" "$IT_TMP/gw1/run"
ip netns exec "$IT_ID-gw1" "$ENCD" -d -f "$IT_TMP/empty.conf" -L "$IT_TMP/gw1/state" -R "$IT_TMP/gw1/run" \
    >>"$IT_TMP/gw1-encd.log" 2>&1 &
ENCD_PID=$!
IT_PIDS+=("$ENCD_PID")
for _ in $(seq 100); do
    grep -q "encd: started" "$IT_TMP/gw1-encd.log" 2>/dev/null && break
    kill -0 $ENCD_PID 2>/dev/null || fail "encd exited: $(tail -5 "$IT_TMP/gw1-encd.log")"
    sleep 0.1
done
grep -q "encd: started" "$IT_TMP/gw1-encd.log" || fail "encd did not start"
SOCK="$IT_TMP/gw1/run/encd.sock"
ctl() { "$ENCCTL" -S "$SOCK" "$@"; }

# expect_out NAME WANT CMD...: CMD exits 0, prints WANT on stdout and nothing on stderr.
expect_out() {
    local name=$1 want=$2; shift 2
    local got rc=0
    got=$("$@" 2>"$IT_TMP/stderr") || rc=$?
    [[ $rc -eq 0 ]] || fail "$name: exit $rc: $(cat "$IT_TMP/stderr")"
    [[ ! -s "$IT_TMP/stderr" ]] || fail "$name: stderr: $(cat "$IT_TMP/stderr")"
    if [[ "$got" != "$want" ]]; then
        diff <(echo "$want") <(echo "$got") >&2 || true
        fail "$name: output differs (- expected, + got)"
    fi
    ok "$name"
}
# expect_fail NAME STATUS ERR CMD...: CMD exits STATUS, stdout empty, stderr exactly ERR.
expect_fail() {
    local name=$1 status=$2 want=$3; shift 3
    local out rc=0
    out=$("$@" 2>"$IT_TMP/stderr") || rc=$?
    [[ $rc -eq $status ]] || fail "$name: exit $rc, expected $status: $(cat "$IT_TMP/stderr")"
    [[ -z "$out" ]] || fail "$name: stdout: $out"
    [[ "$(cat "$IT_TMP/stderr")" == "$want" ]] || fail "$name: stderr: $(cat "$IT_TMP/stderr") expected: $want"
    ok "$name"
}
# The SA's age in seconds changes while the test runs: checked small, then masked.
mask_age() { sed -E 's/^(\tlifetime_cur: .* seconds )([0-9]+)( firstuse .*)$/\1AGE\3/'; }
ages_small() {
    local a
    for a in $(sed -nE 's/^\tlifetime_cur: .* seconds ([0-9]+) firstuse .*$/\1/p'); do
        [[ $a -le 30 ]] || return 1
    done
}

EMPTY=$'FLOWS:\nNo flows\n\nSAD:\nNo entries'
expect_out "-s all on an empty daemon" "$EMPTY" ctl -s all

AUTH_1=0x$(printf 'a1%.0s' $(seq 32)); AUTH_2=0x$(printf 'b2%.0s' $(seq 32))
SHA1=0x$(printf '97%.0s' $(seq 20))
cat >"$IT_TMP/load.conf" <<CONF
gw = "192.0.2.2"
flow esp from 198.18.1.0/24 to 198.18.2.0/24 peer \$gw
flow esp out proto tcp from 198.18.1.0/24 to 198.18.3.0/24 port 443 peer \$gw type use
flow esp out proto udp from 192.0.2.1 to \$gw port 500 type bypass
esp tunnel from 192.0.2.1 to \$gw spi 0x1000:0x1001 auth hmac-sha2-256 enc aes \\
    authkey $AUTH_1:$AUTH_2 enckey $CBC_A:$CBC_B
esp transport from 192.0.2.1 to \$gw spi 0x2001:0x2000 udpencap esn replay 128 \\
    lifetime hard bytes 1M packets 1000 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
AH_CONF="ah from 192.0.2.1 to 192.0.2.2 spi 0x3000 auth hmac-sha1 authkey $SHA1"

expect_out "-n checks a good file silently" "" ctl -n -f "$IT_TMP/load.conf"
expect_out "-n leaves the daemon alone" "$EMPTY" ctl -s all
expect_out "-f loads" "" ctl -f "$IT_TMP/load.conf"
expect_out "-f - loads from stdin" "" ctl -f - <<<"$AH_CONF"

FLOWS='flow esp out from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2 type require
flow esp in from 198.18.2.0/24 to 198.18.1.0/24 peer 192.0.2.2 type require
flow esp out proto tcp from 198.18.1.0/24 to 198.18.3.0/24 port https peer 192.0.2.2 type use
flow esp out proto udp from 192.0.2.1 to 192.0.2.2 port isakmp type bypass'
SA_1000='esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 auth hmac-sha2-256 enc aes'
SA_1001='esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 auth hmac-sha2-256 enc aes'
SA_2000='esp transport from 192.0.2.2 to 192.0.2.1 spi 0x00002000 udpencap port 4500 replay 128 esn lifetime hard bytes 1048576 packets 1000 enc aes-128-gcm'
SA_2001='esp transport from 192.0.2.1 to 192.0.2.2 spi 0x00002001 udpencap port 4500 replay 128 esn lifetime hard bytes 1048576 packets 1000 enc aes-128-gcm'
SA_3000='ah tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00003000 auth hmac-sha1'
SAS="$SA_1000
$SA_1001
$SA_2000
$SA_2001
$SA_3000"
ALL="FLOWS:
$FLOWS

SAD:
$SAS"
expect_out "-s flow" "$FLOWS" ctl -s flow
expect_out "-s sa (sorted by SPI)" "$SAS" ctl -s sa
expect_out "-s all" "$ALL" ctl -s all
expect_out "-s prefixes: -s f, -ssa, -sa" "$FLOWS
$SAS
$ALL" bash -c "'$ENCCTL' -S '$SOCK' -s f && '$ENCCTL' -S '$SOCK' -ssa && '$ENCCTL' -S '$SOCK' -sa"

T=$'\t'
KEYS="$SA_1000 \\
${T}authkey $AUTH_1 \\
${T}enckey $CBC_A
$SA_1001 \\
${T}authkey $AUTH_2 \\
${T}enckey $CBC_B
$SA_2000 \\
${T}enckey $KEY_B
$SA_2001 \\
${T}enckey $KEY_A
$SA_3000 \\
${T}authkey $SHA1"
expect_out "-k -s sa shows the keys" "$KEYS" ctl -k -s sa

VERBOSE="FLOWS:
$FLOWS

SAD:
$SA_1000
${T}sa: spi 0x00001000 auth hmac-sha2-256 enc aes
${T}${T}state mature replay 64 flags 0x4<tunnel>
${T}direction: out
${T}sequence: next 1
${T}lifetime_cur: bytes 0 packets 0 seconds AGE firstuse never
$SA_1001
${T}sa: spi 0x00001001 auth hmac-sha2-256 enc aes
${T}${T}state mature replay 64 flags 0x4<tunnel>
${T}direction: in
${T}sequence: highest 0
${T}lifetime_cur: bytes 0 packets 0 seconds AGE firstuse never
$SA_2000
${T}sa: spi 0x00002000 auth none enc aes-128-gcm
${T}${T}state mature replay 128 flags 0x600<udpencap,esn>
${T}direction: in
${T}sequence: highest 0
${T}lifetime_cur: bytes 0 packets 0 seconds AGE firstuse never
${T}lifetime_hard: bytes 1048576 packets 1000 left
$SA_2001
${T}sa: spi 0x00002001 auth none enc aes-128-gcm
${T}${T}state mature replay 128 flags 0x600<udpencap,esn>
${T}direction: out
${T}sequence: next 1
${T}lifetime_cur: bytes 0 packets 0 seconds AGE firstuse never
${T}lifetime_hard: bytes 1048576 packets 1000 left
$SA_3000
${T}sa: spi 0x00003000 auth hmac-sha1 enc none
${T}${T}state mature replay 64 flags 0x4<tunnel>
${T}direction: out
${T}sequence: next 1
${T}lifetime_cur: bytes 0 packets 0 seconds AGE firstuse never"
ctl -v -s all >"$IT_TMP/v.out" || fail "-v -s all exit $?"
ages_small <"$IT_TMP/v.out" || fail "-v -s all: an SA's age is implausible: $(grep lifetime_cur "$IT_TMP/v.out")"
expect_out "-v -s all (ages masked)" "$VERBOSE" mask_age <"$IT_TMP/v.out"
for f in "-s all" "-v -s all" "-vv -s all" "-s sa" "-v -s sa"; do
    out=$(ctl $f 2>&1)
    for k in "$AUTH_1" "$AUTH_2" "$CBC_A" "$CBC_B" "$KEY_A" "$KEY_B" "$SHA1"; do
        [[ "$out" != *"${k#0x}"* ]] || fail "encctl $f printed a key without -k"
    done
done
ok "no key in -s output without -k"
[[ $(ctl -kv -s sa | grep -c "${T}authkey \|${T}enckey ") -eq 7 ]] || fail "-kv -s sa: keys missing"
ok "-k with -v: keys and details"

# A broken file: refused with file:line:column, nothing changes.
cat >"$IT_TMP/broken.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.9.0/24 peer 192.0.2.2
esp from 192.0.2.1 to 192.0.2.2 spi 0x4000 enc aes-128-gcm enckey 0x00
CONF
expect_fail "a broken file is refused" 1 "$IT_TMP/broken.conf:2:67: enckey for aes-128-gcm must be 160 bits (128-bit key + 32-bit salt), got 8 bits
encctl: Syntax error in config file: ipsec rules not loaded" ctl -f "$IT_TMP/broken.conf"
expect_out "a broken file leaves the state as it was" "$ALL" ctl -s all
expect_fail "-n reports the same errors" 1 "$IT_TMP/broken.conf:2:67: enckey for aes-128-gcm must be 160 bits (128-bit key + 32-bit salt), got 8 bits
encctl: Syntax error in config file: ipsec rules not loaded" ctl -n -f "$IT_TMP/broken.conf"
# Loading the same file again changes nothing (equal flows are kept, equal SAs stay).
expect_out "-f again" "" ctl -f "$IT_TMP/load.conf"
expect_out "-f again leaves the state as it was" "$ALL" ctl -s all

# -d deletes what the file names: the first flow rule (both directions) and the 0x1000:0x1001 SAs.
cat >"$IT_TMP/delete.conf" <<CONF
flow esp from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 auth hmac-sha2-256 enc aes \\
    authkey $AUTH_1:$AUTH_2 enckey $CBC_A:$CBC_B
CONF
expect_out "-d deletes" "" ctl -d -f "$IT_TMP/delete.conf"
expect_out "-s all after -d" "FLOWS:
flow esp out proto tcp from 198.18.1.0/24 to 198.18.3.0/24 port https peer 192.0.2.2 type use
flow esp out proto udp from 192.0.2.1 to 192.0.2.2 port isakmp type bypass

SAD:
$SA_2000
$SA_2001
$SA_3000" ctl -s all

expect_out "-F flushes" "" ctl -F
expect_out "-s all after -F" "$EMPTY" ctl -s all

# -m: acquire for traffic on a require flow without SA, then an SA's life and death.
ctl -m >"$IT_TMP/monitor.out" 2>"$IT_TMP/monitor.err" &
MON=$!
IT_PIDS+=("$MON")
sleep 1
kill -0 $MON 2>/dev/null || fail "-m exited: $(cat "$IT_TMP/monitor.err")"
expect_out "load a require flow without SA" "" ctl -f - <<<"flow esp from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2"
on h1 ping -c 2 -i 0.3 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "ping passed a require flow without SA"
ACQ="acquire: no SA for flow esp out from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2 type require (packet 198.18.1.10 -> 198.18.2.20)"
SHORT="esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00005000 lifetime soft seconds 1 lifetime hard seconds 3 enc aes-128-gcm"
expect_out "load an SA with 1 s soft and 3 s hard lifetimes" "" ctl -f - <<<"esp from 192.0.2.1 to 192.0.2.2 spi 0x5000 lifetime soft seconds 1 lifetime hard seconds 3 enc aes-128-gcm enckey $KEY_A"
for _ in $(seq 100); do grep -q "^SA deleted" "$IT_TMP/monitor.out" && break; sleep 0.1; done
kill -TERM $MON; wait $MON 2>/dev/null || true
grep -qxF "$ACQ" "$IT_TMP/monitor.out" || fail "-m: no acquire line: $(cat "$IT_TMP/monitor.out")"
ok "-m shows the acquire"
want_events="SA added: $SHORT
SA soft lifetime expired: $SHORT
SA hard lifetime expired, removed: $SHORT
SA deleted: $SHORT"
got_events=$(grep '^SA ' "$IT_TMP/monitor.out")
[[ "$got_events" == "$want_events" ]] || fail "-m SA events: $got_events"
ok "-m shows the SA added, its soft and hard expiry, and its removal"
[[ ! -s "$IT_TMP/monitor.err" ]] || fail "-m stderr: $(cat "$IT_TMP/monitor.err")"
expect_out "the expired SA is gone" "" ctl -s sa

# Errors: a user who is not root; encd not running.
cp "$ENCCTL" "$IT_TMP/encctl"; chmod 755 "$IT_TMP" "$IT_TMP/encctl"
expect_fail "a non-root user is refused" 2 "encctl: permission denied on $SOCK (encd's control socket is for root)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$IT_TMP/encctl" -S "$SOCK" -s all
kill -TERM $ENCD_PID
for _ in $(seq 100); do kill -0 $ENCD_PID 2>/dev/null || break; sleep 0.1; done
kill -0 $ENCD_PID 2>/dev/null && fail "encd did not stop"
expect_fail "encd not running" 2 "encctl: encd is not running (no daemon at $SOCK)" ctl -s all
expect_fail "encd not running, -F" 2 "encctl: encd is not running (no daemon at $SOCK)" ctl -F
expect_out "-n needs no daemon" "" ctl -n -f "$IT_TMP/load.conf"
expect_fail "usage" 64 "encctl: Unknown show modifier 'x'
usage: encctl [-dFkmnv] [-D macro=value] [-f file] [-S socket] [-s modifier] [-T name[=value]]" ctl -s x
