#!/usr/bin/env bash
# encd-iked between two encd gateways (h1 — gw1 — gw2 — h2): IKEv2 with a PSK negotiates
# the CHILD SA that carries h1's traffic to h2, installed through encd's control socket.
#   - encd-iked -n: a good file passes; an error names file:line:column; a file others
#     can read is refused
#   - at start each encd-iked installs its policy's require flows: h1's ping is dropped
#     (no cleartext on the wire) and acquires; gw1 (passive, so only the acquire starts
#     it) negotiates; ping and 1 MB of TCP pass as ESP with the SPIs ikectl shows
#   - encd shows the SAs and flows as encd-iked's, bound to one CHILD
#   - SIGTERM of gw1's encd-iked deletes the IKE SA: both sides' SAs leave encd, the
#     flows stay and drop (no cleartext); an active encd-iked started again
#     re-establishes by itself
#   - liveness: outbound but no inbound traffic for dpd_check_interval -> an empty
#     INFORMATIONAL, answered, the IKE SA stays
#   - ikectl reload of a broken file changes nothing; SIGHUP with a changed policy
#     replaces its IKE SA
#   - encd restarted under encd-iked: require flows again; with its state file the
#     CHILD SA is re-added (same SPIs, sequence numbers continue); without it the old
#     CHILD SA is deleted at the peer and a new one negotiated (the old keys could
#     repeat nonces)
#   - no PSK and no key in any log
source "$(dirname "$0")/lib.sh"

IKED=${IKED:-$IT_ROOT/.build/debug/encd-iked}
IKECTL=${IKECTL:-$IT_ROOT/.build/debug/ikectl}
PSK="it-psk-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"

sites
for gw in gw1 gw2; do
    echo "# the tunnel comes from encd-iked" >"$IT_TMP/$gw.conf"
    start_encd $gw "$IT_TMP/$gw.conf"
done

# iked_conf GW MODE: gw1's policy towards gw2 and the mirror.
iked_conf() {
    local gw=$1 mode=$2 me peer
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    cat >"$IT_TMP/$gw-iked.conf" <<CONF
# encd-iked integration test ($gw)
set dpd_check_interval 2
local_net = "198.18.$me.0/24"
ikev2 "site$peer" $mode esp from \$local_net to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 \\
    childsa enc aes-128-gcm \\
    srcid gw$me.example.org dstid gw$peer.example.org \\
    lifetime 1h psk "$PSK"
CONF
    chmod 600 "$IT_TMP/$gw-iked.conf"
}

# start_iked GW: encd-iked in GW against that gateway's encd.
start_iked() {
    local gw=$1
    ip netns exec "$IT_ID-$gw" "$IKED" -d -v -f "$IT_TMP/$gw-iked.conf" -S "$IT_TMP/$gw/run/encd.sock" \
        -s "$IT_TMP/$gw/run/iked.sock" >>"$IT_TMP/$gw-iked.log" 2>&1 &
    local pid=$!
    IT_PIDS+=("$pid")
    eval "IKED_PID_$gw=$pid"
    for _ in $(seq 50); do
        grep -q "require flows installed" "$IT_TMP/$gw-iked.log" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || fail "encd-iked in $gw exited: $(tail -5 "$IT_TMP/$gw-iked.log")"
        sleep 0.1
    done
    fail "encd-iked in $gw did not start"
}
ikectl() { local gw=$1; shift; on "$gw" "$IKECTL" -s "$IT_TMP/$gw/run/iked.sock" "$@"; }
ctl() { local gw=$1; shift; on "$gw" python3 "$(dirname "$0")/encd_ctl.py" "$IT_TMP/$gw/run/encd.sock" "$@"; }
wire_spis() { tcpdump -n -r "$1" 'esp or (udp port 4500 and udp[8:4] != 0)' 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort -u | tr '\n' ' '; }

# --- -n: check only
iked_conf gw1 passive; iked_conf gw2 passive
"$IKED" -n -f "$IT_TMP/gw1-iked.conf" | has "configuration OK" || fail "encd-iked -n on a good file"
"$IKED" -n -v -f "$IT_TMP/gw1-iked.conf" | has "psk (not shown)" || fail "encd-iked -nv does not print the policy"
printf 'ikev2 "bad" from 198.18.1.0/24 to 198.18.2.0/24 peer 192.0.2.2 ikesa enc 3des prf hmac-sha2-256 group curve25519 psk "x"\n' >"$IT_TMP/bad.conf"
chmod 600 "$IT_TMP/bad.conf"
out=$("$IKED" -n -f "$IT_TMP/bad.conf" 2>&1) && fail "encd-iked -n accepted 3des"
[[ $out == "$IT_TMP/bad.conf:1:74: 3des: refused: RFC 8247 says MUST NOT or SHOULD NOT" ]] || fail "-n error: $out"
chmod 644 "$IT_TMP/gw1-iked.conf"
"$IKED" -n -f "$IT_TMP/gw1-iked.conf" >/dev/null 2>&1 && fail "encd-iked accepted a PSK file others can read"
chmod 600 "$IT_TMP/gw1-iked.conf"
ok "encd-iked -n: a good file passes, 3des is refused at file:line:column, a readable PSK file is refused"

# --- both passive: nothing until traffic asks
start_iked gw1; start_iked gw2
capture gw1 wan "$IT_TMP/before.pcap"
on h1 ping -c 1 -W 1 198.18.2.20 >/dev/null 2>&1 || true
stop_capture gw1 wan
# The dropped ping acquired: gw1 negotiates.
for _ in $(seq 50); do grep -q "CHILD SA .* installed" "$IT_TMP/gw2-iked.log" && grep -q "CHILD SA .* installed" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "acquire for 198.18.1.10 -> 198.18.2.20" "$IT_TMP/gw1-iked.log" || fail "gw1's encd-iked saw no acquire"
grep -q "CHILD SA .* installed" "$IT_TMP/gw1-iked.log" || fail "no CHILD SA at gw1"
grep -q "established with gw1.example.org" "$IT_TMP/gw2-iked.log" || fail "gw2 did not authenticate gw1's ID"
[[ -z $(tcpdump -n -r "$IT_TMP/before.pcap" icmp 2>/dev/null) ]] || fail "the ping before the SA left in cleartext"
ok "require flows from the start: the first ping is dropped, not sent clear, and acquires the IKE SA"

capture gw1 wan "$IT_TMP/tunnel.pcap"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping through the negotiated CHILD SA"
tcp_transfer h1 h2 198.18.2.20 1000000
stop_capture gw1 wan
show=$(ikectl gw1 show sa)
echo "$show" | has "ESTABLISHED" || fail "ikectl show sa: $show"
in_spi=$(echo "$show" | sed -nE 's/.*childsa spi in (0x[0-9a-f]+) out (0x[0-9a-f]+).*/\1/p')
out_spi=$(echo "$show" | sed -nE 's/.*childsa spi in (0x[0-9a-f]+) out (0x[0-9a-f]+).*/\2/p')
[[ -n $in_spi && -n $out_spi ]] || fail "ikectl show sa has no CHILD SA: $show"
want=$(printf 'spi=%s\n' "$in_spi" "$out_spi" | sort -u | tr '\n' ' ')
[[ $(wire_spis "$IT_TMP/tunnel.pcap") == "$want" ]] || fail "ESP on the wire: $(wire_spis "$IT_TMP/tunnel.pcap"), ikectl: $in_spi $out_spi"
[[ -z $(tcpdump -n -r "$IT_TMP/tunnel.pcap" 'icmp or tcp' 2>/dev/null) ]] || fail "cleartext on the wire"
ok "ping and 1 MB of TCP pass as ESP with exactly the SPIs ikectl shows ($in_spi/$out_spi)"

owners=$(ctl gw1 '{"command":"show","what":"all"}' "sorted({(x.get('owner'), x.get('child') is not None) for x in r['sas']})")
[[ $owners == "[('encd-iked', True)]" ]] || fail "encd's SAs: $owners"
ok "encd shows both SAs as encd-iked's, bound to a CHILD"

# --- SIGTERM: DELETE; the flows stay and drop
kill -TERM "$IKED_PID_gw1"
for _ in $(seq 50); do kill -0 "$IKED_PID_gw1" 2>/dev/null || break; sleep 0.1; done
for _ in $(seq 50); do grep -q "peer deleted the IKE SA" "$IT_TMP/gw2-iked.log" && break; sleep 0.1; done
grep -q "peer deleted the IKE SA" "$IT_TMP/gw2-iked.log" || fail "gw2 was not told of the DELETE"
for gw in gw1 gw2; do
    n=$(ctl $gw '{"command":"show","what":"sa"}' "len(r.get('sas') or [])")
    [[ $n == 0 ]] || fail "$gw still has $n SAs after the DELETE"
done
capture gw1 wan "$IT_TMP/after.pcap"
on h1 ping -c 2 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "ping passed without SAs"
stop_capture gw1 wan
[[ -z $(tcpdump -n -r "$IT_TMP/after.pcap" icmp 2>/dev/null) ]] || fail "cleartext after the DELETE"
ok "SIGTERM deletes the IKE SA: both encds drop the SAs, the require flows stay and nothing leaves in clear"

# --- active: comes up by itself
iked_conf gw1 active
start_iked gw1
for _ in $(seq 100); do on h1 ping -c 1 -W 1 198.18.2.20 >/dev/null 2>&1 && break; sleep 0.2; done
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after the active encd-iked started"
ikectl gw1 show sa | has "initiator ESTABLISHED" || fail "ikectl: $(ikectl gw1 show sa)"
ok "an active encd-iked initiates at start and the tunnel passes traffic again"

# --- liveness: ESP from gw2 blocked at gw1 while h1 sends: outbound but no inbound
# traffic for dpd_check_interval (2 s) makes gw1 ask gw2 whether it is alive; IKE still
# passes, gw2 answers, the IKE SA stays
on gw1 nft -f - <<'NFT'
table inet it_block {
    chain esp_in {
        type filter hook input priority -400; policy accept;
        meta l4proto esp drop
    }
}
NFT
on h1 ping -c 25 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 || true
on gw1 nft delete table inet it_block
grep -q "traffic out but none in for 2 s: checking that 192.0.2.2:500 is alive" "$IT_TMP/gw1-iked.log" \
    || fail "no liveness check while gw2's ESP was blocked: $(tail -3 "$IT_TMP/gw1-iked.log")"
ikectl gw1 show sa | has "initiator ESTABLISHED" || fail "the IKE SA went although gw2 answered the liveness check"
on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after the liveness check"
ok "liveness: CHILD SAs sending but receiving nothing for 2 s make encd-iked check the peer; it answers and the IKE SA stays"

# --- reload: a broken file changes nothing; a changed policy's IKE SA is replaced
spis() { ikectl gw1 show sa | sed -nE 's/.*childsa spi in (0x[0-9a-f]+) out (0x[0-9a-f]+).*/\1 \2/p'; }
kept=$(spis)
cp "$IT_TMP/gw1-iked.conf" "$IT_TMP/gw1-iked.good"
echo 'ikev2 "broken" from 198.18.1.0/24 to 198.18.9.0/24 peer 192.0.2.9 ikesa enc 3des prf hmac-sha2-256 group curve25519 psk "x"' >>"$IT_TMP/gw1-iked.conf"
ikectl gw1 reload
for _ in $(seq 50); do grep -q "reload of .* failed, the running policies stay" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "reload of .* failed, the running policies stay" "$IT_TMP/gw1-iked.log" || fail "a broken iked.conf was not refused on reload"
grep -A1 "reload of .* failed" "$IT_TMP/gw1-iked.log" | has "3des: refused" || fail "the reload error does not name the line"
[[ $(spis) == "$kept" ]] || fail "a refused reload changed the CHILD SA"
cp "$IT_TMP/gw1-iked.good" "$IT_TMP/gw1-iked.conf"
ikectl gw1 reload
for _ in $(seq 50); do grep -q "reloaded .*: 1 policies, 1 IKE SAs kept" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "reloaded .*: 1 policies, 1 IKE SAs kept" "$IT_TMP/gw1-iked.log" || fail "an unchanged reload did not keep the IKE SA"
[[ $(spis) == "$kept" ]] || fail "an unchanged reload changed the CHILD SA"
[[ $(ctl gw1 '{"command":"show","what":"sa"}' "len(r.get('sas') or [])") == 2 ]] || fail "an unchanged reload removed SAs from encd"
on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after an unchanged reload"
sed 's/lifetime 1h/lifetime 2h/' "$IT_TMP/gw1-iked.good" >"$IT_TMP/gw1-iked.conf"
kill -HUP "$IKED_PID_gw1"
for _ in $(seq 50); do grep -q "reloaded .*: 1 policies, 0 IKE SAs kept" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "reloaded .*: 1 policies, 0 IKE SAs kept" "$IT_TMP/gw1-iked.log" || fail "SIGHUP with a changed policy: $(tail -3 "$IT_TMP/gw1-iked.log")"
for _ in $(seq 100); do now=$(spis); [[ -n $now && $now != "$kept" ]] && break; sleep 0.1; done
[[ -n $now && $now != "$kept" ]] || fail "the changed policy's CHILD SA was not renegotiated"
on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after the reload"
ok "reload: a broken file is refused with its error, an unchanged one keeps the IKE and CHILD SAs in place, a changed policy's IKE SA is replaced ($now)"

# --- encd restarts under encd-iked: the SAs lived in its memory. With its state file,
# which recorded their keys, encd-iked re-adds them (add with continueOnly): the same
# SPIs, sequence numbers above where they were. Without it (lost), they cannot be shown
# to continue: deleted at the peer and negotiated anew.
seq_of() { ctl gw1 '{"command":"show","what":"sa"}' "next((s['sequence'] for s in (r.get('sas') or []) if s['spi'] == $1), 0)"; }
before=$(spis); out=${before##* }
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping before encd's restart"
seq_before=$(seq_of "$out")
(( seq_before > 1 )) || fail "outbound SA $out has sent nothing before the restart (sequence $seq_before)"
stop_encd gw1
start_encd gw1 "$IT_TMP/gw1.conf"
for _ in $(seq 100); do grep -q "re-installed 1 CHILD SAs" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "re-installed 1 CHILD SAs" "$IT_TMP/gw1-iked.log" || fail "encd-iked did not re-install the CHILD SA: $(grep -E "encd restarted|re-install|encd lost" "$IT_TMP/gw1-iked.log" | tail -3)"
[[ $(spis) == "$before" ]] || fail "the CHILD SA changed over encd's restart ($before -> $(spis))"
# A clean stop recorded exactly how far the SA got: it goes on from the next number.
seq_after=$(seq_of "$out")
(( seq_after >= seq_before )) || fail "outbound SA $out restarted its sequence numbers (next $seq_before before, $seq_after after)"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after encd restarted with its state"
seq_sent=$(seq_of "$out")
(( seq_sent > seq_after )) || fail "outbound SA $out sent nothing after the restart (next $seq_sent)"
ok "encd restarted with its state: encd-iked re-added the CHILD SA $before, its sequence numbers continue (next $seq_before before the restart, $seq_after after it, $seq_sent after a ping)"

stop_encd gw1
find "$IT_TMP/gw1/state" -type f -delete
start_encd gw1 "$IT_TMP/gw1.conf"
for _ in $(seq 100); do after=$(spis); [[ -n $after && $after != "$before" ]] && break; sleep 0.1; done
[[ -n $after && $after != "$before" ]] || fail "no new CHILD SA after encd restarted without its state (before: $before, now: $after)"
grep -q "not re-installed: .*no record of these keys" "$IT_TMP/gw1-iked.log" || fail "encd-iked did not say why the CHILD SA was not re-added"
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping after encd restarted without its state"
for gw in gw1 gw2; do
    n=$(ctl $gw '{"command":"show","what":"sa"}' "len(r.get('sas') or [])")
    [[ $n == 2 ]] || fail "$gw has $n SAs after encd's restart (the old pair must be deleted at the peer)"
done
ok "encd restarted without its state: encd refused to re-add the old keys, encd-iked deleted the CHILD SA at the peer and negotiated $after"

for f in "$IT_TMP"/*-iked.log "$IT_TMP"/*-encd.log; do
    grep -q "$PSK" "$f" && fail "the PSK is in $(basename "$f")"
done
ok "no PSK in any log"
