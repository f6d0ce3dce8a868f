#!/usr/bin/env bash
# encd-iked against strongSwan (charon 5.9.8, kernel-libipsec: userspace ESP through a
# TUN device, ESP in UDP only, and a faked NAT_DETECTION_SOURCE_IP so every exchange is
# a NAT-T one): h1 — gw1 (encd + encd-iked) — gw2 (charon) — h2, IKEv2 with a PSK and
# FQDN IDs, AES-256-GCM/X25519 for the IKE SA and AES-128-GCM for the CHILD SA.
#   - encd-iked initiates: IKE_AUTH floats to 4500, charon narrows nothing, ping and
#     1 MB of TCP pass as ESP-in-UDP with the SPIs both sides report
#   - charon initiates to encd-iked (passive): the same, roles swapped
#   - a DELETE from charon (swanctl --terminate) empties encd; the require flows drop
#   - a wrong PSK: charon refuses encd-iked and nothing reaches encd
#   - an IKE proposal charon does not take: NO_PROPOSAL_CHOSEN, nothing in encd
# Skipped (exit 0 with a note) when charon is not installed.
source "$(dirname "$0")/lib.sh"

PSK="it-psk-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"

sites
echo "# the tunnel comes from encd-iked" >"$IT_TMP/gw1.conf"
start_encd gw1 "$IT_TMP/gw1.conf"
source "$(dirname "$0")/iked_lib.sh"

# --- charon in gw2
charon_conf() {   # charon_conf PSK
    # Small enough that charon sends IKE_AUTH and later messages in RFC 7383 fragments.
    strongswan_conf "fragment_size = 160"
    cat >"$CS/swanctl.conf" <<EOF
connections {
  s2s {
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = aes256gcm16-prfsha256-x25519
    local { auth = psk
            id = gw2.example.org }
    remote { auth = psk
             id = gw1.example.org }
    children {
      net { local_ts = 198.18.2.0/24
            remote_ts = 198.18.1.0/24
            esp_proposals = aes128gcm16
            mode = tunnel
            start_action = none }
    }
  }
}
secrets {
  ike-it { id-1 = gw1.example.org
           id-2 = gw2.example.org
           secret = "$1" }
}
EOF
}
charon_conf "$PSK"
start_charon

# --- encd-iked in gw1
iked_conf() {   # iked_conf MODE PSK [LIFETIME]
    cat >"$IT_TMP/gw1-iked.conf" <<CONF
ikev2 "charon" $1 esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2 \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm \\
    srcid gw1.example.org dstid gw2.example.org lifetime ${3:-1h} psk "$2"
CONF
    chmod 600 "$IT_TMP/gw1-iked.conf"
}
# --- 1. encd-iked initiates
iked_conf active "$PSK" 30
start_iked
wait_for "encd-iked did not bring up a CHILD SA with charon: $(tail -5 "$IT_TMP/gw1-iked.log")" has_child
grep -q "NAT detected" "$IT_TMP/gw1-iked.log" || fail "encd-iked did not see charon's faked NAT-D"
traffic initiator
ok "encd-iked -> charon: IKE_SA_INIT, IKE_AUTH on 4500, CHILD SA $(iked_spis) carries ping and 1 MB of TCP as ESP-in-UDP"
# charon (fragment_size 160) answered IKE_AUTH in SKF fragments, which encd-iked reassembled.
grep -q "splitting IKE message" "$CS/charon.log" || fail "charon did not fragment (RFC 7383) its messages: $(grep -ci fragment "$CS/charon.log") lines about fragments"
on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | has "dropped: .*fragment" && fail "encd-iked dropped fragments: $(on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | grep dropped)"
ok "charon's IKE_AUTH answer came in RFC 7383 fragments and encd-iked reassembled it"

# --- rekeys under a 20 ms ping: encd-iked's own (encd's soft lifetime of a 30 s CHILD SA
# fires at 25-29 s), then charon's CHILD rekey and charon's IKE rekey (encd-iked's own
# IKE rekey runs on the IKE SA's clock: EngineTests)
before=$(iked_spis)
on h1 ping -c 2000 -i 0.02 -W 1 198.18.2.20 >"$IT_TMP/rekey-ping.out" 2>&1 &
pingpid=$!
for _ in $(seq 350); do grep -q "CHILD SA .* rekeyed: now" "$IT_TMP/gw1-iked.log" && break; sleep 0.1; done
grep -q "CHILD SA .* rekeyed: now" "$IT_TMP/gw1-iked.log" || fail "encd-iked did not rekey on encd's soft lifetime: $(grep -i rekey "$IT_TMP/gw1-iked.log" | tail -3)"
swanctl --rekey --child net >/dev/null || fail "swanctl --rekey --child"
wait_for "charon's CHILD rekey did not reach encd-iked" grep -q "rekeyed by the peer" "$IT_TMP/gw1-iked.log"
sleep 2
swanctl --rekey --ike s2s >/dev/null || fail "swanctl --rekey --ike"
wait_for "charon's IKE rekey did not reach encd-iked" grep -q "IKE SA rekeyed by the peer" "$IT_TMP/gw1-iked.log"
wait "$pingpid" || true
got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/rekey-ping.out")
(( got >= 1980 )) || fail "ping across the rekeys: $got of 2000 answered"
[[ $(encd_sas) == 2 ]] || fail "encd has $(encd_sas) SAs after the rekeys (old pairs left?)"
[[ $(iked_spis) != "$before" ]] || fail "the CHILD SA's SPIs did not change"
ikesas=$(swanctl --list-sas | grep -c "s2s: #")
[[ $ikesas == 1 ]] || fail "charon has $ikesas IKE SAs after the rekeys"
traffic rekeyed
ok "rekeys under a 20 ms ping ($got/2000 answered): encd-iked's on soft expiry, charon's CHILD and IKE rekeys; one pair in encd, one IKE SA at charon"

# --- 2. a DELETE from charon: encd-iked removes the SAs and, being active, comes back
old=$(iked_spis)
swanctl --terminate --ike s2s --timeout 10 >/dev/null || fail "swanctl --terminate"
wait_for "encd-iked did not hear charon's DELETE" grep -q "peer deleted the IKE SA" "$IT_TMP/gw1-iked.log"
grep -q "removing CHILD SA" "$IT_TMP/gw1-iked.log" && fail "encd refused to remove the CHILD SA: $(grep 'removing CHILD SA' "$IT_TMP/gw1-iked.log")"
renewed() { local s; s=$(iked_spis); [[ -n $s && $s != "$old" ]]; }
wait_for "encd-iked did not come back after charon's DELETE" renewed
[[ $(encd_sas) == 2 ]] || fail "encd has $(encd_sas) SAs after the new CHILD SA (the deleted pair stayed?)"
traffic renewed
ok "charon's DELETE: the old pair leaves encd; active encd-iked negotiates a new CHILD SA $(iked_spis) at once"
stop_iked
wait_for "encd still has SAs after encd-iked's DELETE" test "$(encd_sas)" = 0

# --- 3. charon initiates to a passive encd-iked
iked_conf passive "$PSK"
start_iked
swanctl --initiate --child net --ike s2s --timeout 15 >"$IT_TMP/initiate.txt" 2>&1 || fail "charon's initiate: $(tail -5 "$IT_TMP/initiate.txt")"
wait_for "no CHILD SA at encd-iked as responder" has_child
on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | has "responder ESTABLISHED" || fail "ikectl does not show a responder SA"
traffic responder
ok "charon -> encd-iked: the responder's CHILD SA $(iked_spis) carries ping and 1 MB of TCP"
swanctl --terminate --ike s2s --timeout 10 >/dev/null || true
stop_iked

# --- 4. a wrong PSK
iked_conf active "not-$PSK"
start_iked
wait_for "charon did not refuse the wrong PSK" grep -q "closed: IKE_AUTH refused: AUTHENTICATION_FAILED" "$IT_TMP/gw1-iked.log"
[[ $(encd_sas) == 0 ]] || fail "SAs in encd after a failed authentication"
ok "a wrong PSK: charon answers AUTHENTICATION_FAILED and nothing reaches encd"
stop_iked

# --- 5. an IKE proposal charon does not take
cat >"$IT_TMP/gw1-iked.conf" <<CONF
ikev2 "charon" active esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2 \\
    ikesa enc aes-128-gcm prf hmac-sha2-512 group ecp384 childsa enc aes-128-gcm \\
    srcid gw1.example.org dstid gw2.example.org psk "$PSK"
CONF
start_iked
wait_for "charon did not refuse the IKE proposal" grep -q "closed: IKE_SA_INIT refused: NO_PROPOSAL_CHOSEN" "$IT_TMP/gw1-iked.log"
[[ $(encd_sas) == 0 ]] || fail "SAs in encd after a refused IKE proposal"
ok "an IKE proposal charon does not take (AES-128-GCM, PRF SHA-512, ECP-384): NO_PROPOSAL_CHOSEN, nothing in encd"
stop_iked

grep -q "$PSK" "$IT_TMP/gw1-iked.log" "$IT_TMP/gw1-encd.log" && fail "the PSK is in a log"
ok "no PSK in encd's or encd-iked's log"
