#!/usr/bin/env bash
# encd-iked behind a real NAT against strongSwan's charon 5.9.8 (kernel-libipsec), with
# charon configured as issue #10 says (two IKE proposals, CHILD SAs rekeying every
# 25-30 s, IKE SAs every 2 min, DPD every 10 s, cookies above one half-open IKE SA):
#   h1 198.18.1.10 — gw1 (encd + encd-iked; 198.18.1.1, 192.0.2.2) — nat (192.0.2.1 |
#   203.0.113.1, nft masquerade of UDP to ports 40000-40100; lib.sh's nat_sites) — gw2
#   (charon; 203.0.113.2, 198.18.2.1) — h2 198.18.2.20
#   - a stray half-open IKE_SA_INIT first: charon answers encd-iked with COOKIE, and it
#     still establishes; h1's first ping of the `require` flow starts the negotiation
#     (at most two pings lost)
#   - both sides show the SAs: charon ESTABLISHED / INSTALLED, TUNNEL-in-UDP, gw1's
#     NATed port; `encctl -s sa -v` the same SPIs reversed, with udpencap
#   - ping and iperf3 both ways as ESP-in-UDP
#   - `ping -i 0.1` for 3 minutes over four CHILD rekeys from each side and two IKE
#     rekeys: nothing lost, no old SPI left; NAT keepalives from gw1 every 20 s
#   - charon's DPD (idle) is answered; a CHILD SA with other traffic gets
#     TS_UNACCEPTABLE, one with another cipher NO_PROPOSAL_CHOSEN, and the IKE SA stays
#   - SIGSTOP of charon: encd-iked drops the peer after dpd_check_interval plus its
#     retransmissions; its SAs leave encd, the flows keep dropping (no cleartext)
#   - SIGTERM of encd-iked sends DELETE; the require flows stay
# Skipped (exit 0) when charon is not installed. About 7 minutes.
source "$(dirname "$0")/lib.sh"

PSK="it-psk-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}

nat_sites

echo "# the tunnel comes from encd-iked" >"$IT_TMP/gw1.conf"
start_encd gw1 "$IT_TMP/gw1.conf"
source "$(dirname "$0")/iked_lib.sh"

strongswan_conf "cookie_threshold = 1"
cat >"$CS/swanctl.conf" <<EOF
connections {
  s2s {
    version = 2
    local_addrs = 203.0.113.2
    remote_addrs = %any
    proposals = aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048
    rekey_time = 120s
    dpd_delay = 10s
    local { auth = psk
            id = gw2.example.org }
    remote { auth = psk
             id = gw1.example.org }
    children {
      net { local_ts = 198.18.2.0/24
            remote_ts = 198.18.1.0/24
            esp_proposals = aes128gcm16, aes256-sha256
            rekey_time = 30s
            rand_time = 5s
            mode = tunnel
            start_action = none }
      # Other traffic than encd-iked's policy: TS_UNACCEPTABLE.
      stray { local_ts = 198.18.2.0/24
              remote_ts = 198.18.9.0/24
              esp_proposals = aes128gcm16
              start_action = none }
      # A cipher encd-iked's policy does not take: NO_PROPOSAL_CHOSEN.
      cipher { local_ts = 198.18.2.0/24
               remote_ts = 198.18.1.0/24
               esp_proposals = aes256gcm16
               start_action = none }
    }
  }
}
secrets {
  ike-it { id-1 = gw1.example.org
           id-2 = gw2.example.org
           secret = "$PSK" }
}
EOF
start_charon

# encd-iked: passive (the first packet starts it), CHILD SAs of 20 s (encd's soft
# lifetime at 17-19 s), IKE SAs of 100 s (rekeyed at 85-95 s), liveness every 10 s.
cat >"$IT_TMP/gw1-iked.conf" <<CONF
set dpd_check_interval 10
ikev2 "charon" passive esp from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.2 peer 203.0.113.2 \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm \\
    srcid gw1.example.org dstid gw2.example.org ikelifetime 100 lifetime 20 psk "$PSK"
CONF
chmod 600 "$IT_TMP/gw1-iked.conf"
start_iked

# --- a stray half-open IKE_SA_INIT (from the NAT box), then h1's first packets
on nat python3 - <<'PY'
import os, socket, struct
def transform(more, ttype, tid, attrs=b""):
    return struct.pack("!BBHBBH", 3 if more else 0, 0, 8 + len(attrs), ttype, 0, tid) + attrs
trans = transform(True, 1, 20, struct.pack("!HH", 0x800E, 256)) + transform(True, 2, 5) + transform(False, 4, 31)
proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(trans), 1, 1, 0, 3) + trans
sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal
ke = struct.pack("!BBHHH", 40, 0, 8 + 32, 31, 0) + os.urandom(32)
nonce = struct.pack("!BBH", 0, 0, 4 + 32) + os.urandom(32)
body = sa + ke + nonce
header = os.urandom(8) + bytes(8) + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(body))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("203.0.113.1", 5000))
s.sendto(header + body, ("203.0.113.2", 500))
s.settimeout(3)
s.recv(2048)
PY
[[ $? == 0 ]] || fail "charon did not answer the stray IKE_SA_INIT"
capture gw1 wan "$IT_TMP/first.pcap"
on h1 ping -c 6 -i 0.5 -W 2 198.18.2.20 >"$IT_TMP/first-ping.out" 2>&1
stop_capture gw1 wan
got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/first-ping.out")
(( got >= 4 )) || fail "the first pings of the require flow: $got of 6 answered: $(tail -5 "$IT_TMP/gw1-iked.log")"
[[ -z $(tcpdump -n -r "$IT_TMP/first.pcap" 'icmp' 2>/dev/null) ]] || fail "cleartext ICMP left gw1 before the CHILD SA"
grep -q "acquire for 198.18.1.10 -> 198.18.2.20" "$IT_TMP/gw1-iked.log" || fail "encd-iked did not log an acquire"
grep -q "responder asks for a cookie" "$IT_TMP/gw1-iked.log" || fail "charon did not ask encd-iked for a cookie: $(head -8 "$IT_TMP/gw1-iked.log")"
ok "a stray half-open IKE_SA_INIT, then h1's first pings: charon asked for a COOKIE, encd-iked retried and established; $got of 6 answered, nothing in the clear"

# --- what both sides show
sas=$(swanctl --list-sas)
grep -q "s2s: #.*ESTABLISHED" <<<"$sas" || fail "charon: no ESTABLISHED IKE SA: $sas"
grep -q "net: #.*INSTALLED, TUNNEL-in-UDP" <<<"$sas" || fail "charon: no INSTALLED TUNNEL-in-UDP CHILD SA: $sas"
grep -Eq "remote 'gw1.example.org' @ 203\.0\.113\.1\[(400[0-9][0-9]|40100)\]" <<<"$sas" \
    || fail "charon does not see gw1 at its NATed port: $(grep remote <<<"$sas")"
read -r in out <<<"$(iked_spis)"
cin=$(sed -nE 's/^ +in +([0-9a-f]{8}),.*/\1/p' <<<"$sas" | head -1); cout=$(sed -nE 's/^ +out +([0-9a-f]{8}),.*/\1/p' <<<"$sas" | head -1)
[[ $in == 0x$cout && $out == 0x$cin ]] || fail "SPIs: encd-iked in $in out $out, charon in $cin out $cout"
v=$(on gw1 "$ENCCTL" -S "$IT_TMP/gw1/run/encd.sock" -s sa -v)
grep -q "spi $in" <<<"$v" && grep -q "spi $out" <<<"$v" || fail "encctl -s sa -v lacks the SPIs $in $out: $v"
[[ $(grep -Ec "^esp tunnel from (192.0.2.2 to 203.0.113.2|203.0.113.2 to 192.0.2.2) spi 0x[0-9a-f]+ udpencap port 4500 peerport 4500 " <<<"$v") == 2 ]] \
    || fail "encctl -s sa -v: not both SAs UDP-encapsulated to charon's 4500: $v"
grep -q "owner: encd-iked child" <<<"$v" || fail "encctl -s sa -v: not encd-iked's"
ok "charon: ESTABLISHED, INSTALLED TUNNEL-in-UDP, gw1 at 203.0.113.1:4000x; encctl: SPIs $in/$out reversed from charon's, udpencap to 203.0.113.2:4500, owned by encd-iked"

traffic nat
on h2 iperf3 -s -1 -D -p 5201 >/dev/null 2>&1; sleep 0.5
on h1 iperf3 -c 198.18.2.20 -p 5201 -t 3 >"$IT_TMP/iperf-up.txt" 2>&1 || fail "iperf3 h1 -> h2: $(tail -3 "$IT_TMP/iperf-up.txt")"
on h2 iperf3 -s -1 -D -p 5202 >/dev/null 2>&1; sleep 0.5
on h1 iperf3 -c 198.18.2.20 -p 5202 -t 3 -R >"$IT_TMP/iperf-down.txt" 2>&1 || fail "iperf3 h2 -> h1: $(tail -3 "$IT_TMP/iperf-down.txt")"
rate() { sed -nE 's/.* ([0-9.]+ [MG]bits\/sec) .*receiver.*/\1/p' "$1" | tail -1; }
ok "ping, 1 MB of TCP and iperf3 both ways through the NAT ($(rate "$IT_TMP/iperf-up.txt") up, $(rate "$IT_TMP/iperf-down.txt") down)"

# --- 3 minutes of ping every 100 ms over rekeys from both sides
capture gw1 wan "$IT_TMP/long.pcap"
count() { grep -c "$1" "$2" || true; }   # grep -c fails (set -e) on no match
rekeys0=$(count "CHILD SA .* rekeyed: now" "$IT_TMP/gw1-iked.log")
on h1 ping -c 1800 -i 0.1 -W 1 198.18.2.20 >"$IT_TMP/long-ping.out" 2>&1 &
pingpid=$!
for t in 40 80 120 160; do
    sleep 40
    swanctl --rekey --child net >/dev/null || fail "swanctl --rekey --child at $t s"
    [[ $t == 120 ]] && { sleep 3; swanctl --rekey --ike s2s >/dev/null || fail "swanctl --rekey --ike"; }
done
wait "$pingpid" || true
stop_capture gw1 wan
got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/long-ping.out")
ours=$(( $(count "CHILD SA .* rekeyed: now" "$IT_TMP/gw1-iked.log") - rekeys0 ))
theirs=$(count "CHILD SA [0-9a-f]* rekeyed by the peer" "$IT_TMP/gw1-iked.log")
ike_ours=$(count "IKE SA rekeyed: now" "$IT_TMP/gw1-iked.log"); ike_theirs=$(count "IKE SA rekeyed by the peer" "$IT_TMP/gw1-iked.log")
keepalives=$(tcpdump -n -r "$IT_TMP/long.pcap" 'src 192.0.2.2 and udp port 4500 and udp[4:2] = 9 and udp[8] = 0xff' 2>/dev/null | wc -l)
(( ours >= 4 && theirs >= 4 )) || fail "CHILD rekeys in 3 minutes: $ours by encd-iked, $theirs by charon (4 each expected)"
(( ike_ours + ike_theirs >= 2 )) || fail "IKE rekeys in 3 minutes: $ike_ours by encd-iked, $ike_theirs by charon"
[[ $got == 1800 ]] || fail "ping over the rekeys: $got of 1800 answered ($ours + $theirs CHILD rekeys, $ike_ours + $ike_theirs IKE rekeys)"
wait_for "old SAs stayed in encd: $(encd_sas)" test "$(encd_sas)" = 2
swanctl --list-sas >"$IT_TMP/after-rekeys.txt"
[[ $(count "s2s: #" "$IT_TMP/after-rekeys.txt") == 1 ]] || fail "charon has $(count "s2s: #" "$IT_TMP/after-rekeys.txt") IKE SAs"
[[ $(count "net: #" "$IT_TMP/after-rekeys.txt") == 1 ]] || fail "charon has $(count "net: #" "$IT_TMP/after-rekeys.txt") CHILD SAs"
(( keepalives >= 8 )) || fail "NAT keepalives from gw1 in 3 minutes: $keepalives (one every 20 s expected)"
ok "3 minutes of ping -i 0.1: 1800/1800 answered over $ours CHILD rekeys by encd-iked, $theirs by charon, $((ike_ours + ike_theirs)) IKE rekeys; one pair in encd, one IKE and one CHILD SA at charon; $keepalives NAT keepalives from gw1"
traffic rekeyed

# --- charon's DPD while idle, refused CHILD SAs
dpd0=$(count "sending DPD request" "$CS/charon.log")
sleep 25
dpd=$(( $(count "sending DPD request" "$CS/charon.log") - dpd0 ))
(( dpd >= 1 )) || fail "charon sent no DPD in 25 idle seconds"
grep -q "giving up after" "$CS/charon.log" && fail "charon gave up on encd-iked: $(grep -B2 "giving up" "$CS/charon.log" | head -5)"
swanctl --list-sas | has "s2s: #.*ESTABLISHED" || fail "the IKE SA did not survive charon's DPD"
ok "charon's DPD ($dpd requests in 25 idle seconds) answered; the IKE SA stays"
swanctl --initiate --child stray --timeout 10 >"$IT_TMP/stray.txt" 2>&1 && fail "charon got a CHILD SA for 198.18.9.0/24"
grep -q "received TS_UNACCEPTABLE notify" "$CS/charon.log" || fail "no TS_UNACCEPTABLE for other traffic: $(tail -5 "$IT_TMP/stray.txt")"
swanctl --initiate --child cipher --timeout 10 >"$IT_TMP/cipher.txt" 2>&1 && fail "charon got a CHILD SA with AES-256-GCM"
grep -q "received NO_PROPOSAL_CHOSEN notify" "$CS/charon.log" || fail "no NO_PROPOSAL_CHOSEN for another cipher: $(tail -5 "$IT_TMP/cipher.txt")"
swanctl --list-sas | has "s2s: #.*ESTABLISHED" || fail "the IKE SA did not survive the refused CHILD SAs"
[[ $(encd_sas) == 2 ]] || fail "encd has $(encd_sas) SAs after the refused CHILD SAs"
ok "CHILD SAs charon asks for other traffic (TS_UNACCEPTABLE) and another cipher (NO_PROPOSAL_CHOSEN) are refused; the IKE SA and its CHILD SA stay"

# --- charon stops answering: encd-iked's liveness check drops it
kill -STOP "$CHARON_PID"
stopped=$(date +%s)
on h1 ping -w 160 -i 0.5 -W 1 198.18.2.20 >/dev/null 2>&1 &
pingpid=$!
wait_for_long() { for _ in $(seq 1800); do "$@" && return 0; sleep 0.1; done; return 1; }
wait_for_long grep -q "no answer from 203.0.113.2:4500 after" "$IT_TMP/gw1-iked.log" \
    || fail "encd-iked did not give up on a stopped charon: $(tail -5 "$IT_TMP/gw1-iked.log")"
took=$(( $(date +%s) - stopped ))
# A check needs one whole interval of sending without receiving, so it asks 10 to 20 s
# after charon stopped; then 126 s of retransmissions (2 + 4 + ... + 32, give-up 64 s later).
(( took <= 20 + 126 + 15 )) || fail "encd-iked took $took s to drop the peer (dpd_check_interval 10 s, twice at most, + 126 s of retransmissions)"
wait_for "encd still has the dead peer's SAs" test "$(encd_sas)" = 0
capture gw1 wan "$IT_TMP/dead.pcap"
sleep 2
stop_capture gw1 wan
[[ -z $(tcpdump -n -r "$IT_TMP/dead.pcap" 'icmp' 2>/dev/null) ]] || fail "cleartext after the peer was dropped"
wait "$pingpid" 2>/dev/null || true   # ping exits 1 after losses
ok "SIGSTOP of charon: encd-iked asked, retransmitted and dropped the peer after $took s; its SAs left encd, h1's traffic stays dropped"
kill -CONT "$CHARON_PID"

# --- SIGTERM of encd-iked sends DELETE
on h1 ping -c 6 -i 0.5 -W 2 198.18.2.20 >/dev/null 2>&1
wait_for "encd-iked did not come back after charon did: $(tail -3 "$IT_TMP/gw1-iked.log")" has_child
stop_iked
wait_for "charon did not receive encd-iked's DELETE" grep -q "received DELETE for IKE_SA" "$CS/charon.log"
[[ $(encd_sas) == 0 ]] || fail "encd has $(encd_sas) SAs after encd-iked's SIGTERM"
capture gw1 wan "$IT_TMP/after.pcap"
on h1 ping -c 2 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 && fail "h1 reached h2 without encd-iked"
stop_capture gw1 wan
[[ -z $(tcpdump -n -r "$IT_TMP/after.pcap" 'icmp' 2>/dev/null) ]] || fail "cleartext after encd-iked stopped"
ok "SIGTERM of encd-iked: charon received DELETE for the IKE SA; the require flows keep h1's traffic dropped"
grep -q "$PSK" "$IT_TMP/gw1-iked.log" "$IT_TMP/gw1-encd.log" && fail "the PSK is in a log"
ok "no PSK in encd's or encd-iked's log"
