#!/usr/bin/env bash
# Throughput baseline through encd's site-to-site tunnel (root; not part of the test
# suite). Topology of Tests/Integration/site_to_site_test.sh, IPv4 only:
#   h1 198.18.1.10 — gw1 — 192.0.2.1 ... 192.0.2.2 — gw2 — h2 198.18.2.20
# Runs iperf3 from h1 to h2 twice: plain forwarding (no encd), then with encd on both
# gateways and an AES-128-GCM tunnel. Per run: TCP for $BENCH_SECONDS seconds, and UDP
# with 64-byte datagrams at an unlimited rate (-b 0) for as long.
#
#   scripts/bench-tunnel.sh                 uses .build/release/encd if built, else debug
#   ENCD=path/to/encd BENCH_SECONDS=10 scripts/bench-tunnel.sh
# Build the release binary first for meaningful figures: swift build -c release --product encd
# Results are printed, one line per measurement; Docs/throughput.md records a run.
# For each tunnel run it also prints the CPU per packet gw1 forwarded (issue #9):
# encd's own user+system time on each gateway (/proc/PID/stat) and the machine's
# softirq time (/proc/stat; all namespaces share it), in microseconds per packet.
#
# To compare builds of encd in one run (issue #9: each change measured before and after,
# side by side on one topology): BENCH_BUILDS="before=/path/encd after=/path/encd", and
# BENCH_ROUNDS=N runs every build N times, interleaved (before, after, before, ...); the
# last lines are a table of medians per build.
#
# A build may carry encd arguments after a comma: BENCH_BUILDS="w1=/path/encd,-w1
# w2=/path/encd,-w2" compares one worker per stage with two (issue #9); "+udpencap"
# among them runs that build with UDP-encapsulated SAs (RFC 3948, as libipsec always
# sends): BENCH_BUILDS="esp=/path/encd udp=/path/encd,+udpencap".
# BENCH_TUNNELS=2 protects two flows with an SA pair each (h1's second address
# 198.18.1.11 through gateway addresses 192.0.2.11/.12), whose SAs fall on different
# workers, and runs every iperf3 measurement as two clients at once (one per flow,
# figures summed). strongSwan is left out then.
#
# BENCH_RSS_SECONDS=600 adds a 10-minute flood through the last build, with encd's
# resident memory on each gateway at its start, peak and end. BENCH_PERF=10 profiles
# the last build (perf record -a -g, 10 s of TCP, then of 64-byte UDP; BENCH_PERF_KEEP=DIR
# keeps perf-tcp.data and perf-udp64.data there for perf report).
#
# When strongSwan's charon is installed (Debian: strongswan-charon strongswan-swanctl
# libcharon-extra-plugins libstrongswan-standard-plugins), every round also runs the
# same measurements through strongSwan 5.9 with kernel-libipsec (userspace ESP through
# a TUN device, the tool encd is compared with in issue #9): one charon per gateway,
# IKEv2 with a PSK, the same AES-128-GCM for ESP. BENCH_STRONGSWAN=0 leaves it out.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${ENCD:-} ]]; then
    ENCD=$ROOT/.build/release/encd
    [[ -x $ENCD ]] || { ENCD=$ROOT/.build/debug/encd; echo "note: no release build, measuring the debug binary" >&2; }
fi
export ENCD
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
BUILDS=${BENCH_BUILDS:-encd=$ENCD}
ROUNDS=${BENCH_ROUNDS:-1}
CHARON=/usr/lib/ipsec/charon
STRONGSWAN=${BENCH_STRONGSWAN:-1}
TUNNELS=${BENCH_TUNNELS:-1}
[[ -x $CHARON && $TUNNELS == 1 ]] || STRONGSWAN=0
source "$ROOT/Tests/Integration/lib.sh"
for b in $BUILDS; do b=${b#*=}; [[ -x ${b%%,*} ]] || fail "no encd binary at ${b%%,*} (swift build -c release --product encd)"; done

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
if [[ $TUNNELS == 2 ]]; then
    on h1 ip addr add 198.18.1.11/24 dev eth0
    on gw1 ip addr add 192.0.2.11/24 dev wan
    on gw2 ip addr add 192.0.2.12/24 dev wan
fi

# iperf3 KIND ARGS...: one client run from h1 against a one-shot server in h2; prints
# "KIND: figures" parsed from iperf3's JSON.
# With BENCH_TUNNELS=2 (and a tunnel up: "plain" runs keep one client), two clients at
# once, from 198.18.1.10 and 198.18.1.11, their figures summed.
iperf() {
    local kind=$1; shift
    local clients=(198.18.1.10) i pids=() files=()
    [[ $TUNNELS == 2 && $kind != plain* ]] && clients+=(198.18.1.11)
    for i in "${!clients[@]}"; do
        ip netns exec "$IT_ID-h2" iperf3 -s -1 -p $((5201 + i)) >/dev/null 2>&1 &
        IT_PIDS+=("$!"); pids+=("$!")
    done
    sleep 0.5
    local clientpids=()
    for i in "${!clients[@]}"; do
        files+=("$IT_TMP/$kind-$i.json")
        on h1 timeout $((SECONDS_PER_RUN + 20)) iperf3 -c 198.18.2.20 -B "${clients[$i]}" -p $((5201 + i)) -t "$SECONDS_PER_RUN" -J "$@" >"$IT_TMP/$kind-$i.json" &
        clientpids+=("$!")
    done
    for i in "${!clientpids[@]}"; do
        wait "${clientpids[$i]}" || fail "iperf3 $kind: $(head -c 400 "${files[$i]}")"
    done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    python3 - "$kind" "${files[@]}" <<'PY'
import json, sys
kind = sys.argv[1]
runs = [json.load(open(f)) for f in sys.argv[2:]]
if "tcp" in kind:
    rx = sum(r["end"]["sum_received"]["bits_per_second"] for r in runs)
    tx = sum(r["end"]["sum_sent"]["bits_per_second"] for r in runs)
    re = sum(r["end"]["sum_sent"].get("retransmits", 0) for r in runs)
    print("%-14s TCP   %8.1f Mbit/s received (%8.1f sent, %d retransmits)" % (kind, rx / 1e6, tx / 1e6, re))
else:
    sent = got = 0.0
    lost = []
    for r in runs:
        s = r["end"]["sum"]
        sent += s["packets"] / s["seconds"]
        got += (s["packets"] - s["lost_packets"]) / s["seconds"]
        lost.append(s["lost_percent"])
    size = runs[0]["start"]["test_start"]["blksize"]
    print("%-14s UDP%-4d %8.0f pkt/s sent, %8.0f pkt/s received (%.1f Mbit/s of payload), %.1f%% lost"
          % (kind, size, sent, got, got * size * 8 / 1e6, max(lost)))
PY
}

echo "builds: $BUILDS"
echo "iperf3 $(iperf3 --version | head -1 | cut -d' ' -f2), $SECONDS_PER_RUN s per run, $ROUNDS round(s), $(nproc) CPUs, kernel $(uname -r)"
RESULTS=$IT_TMP/results.txt
iperf plain-tcp | tee -a "$RESULTS"
iperf plain-udp -u -l 64 -b 0 | tee -a "$RESULTS"
# Plain forwarding again with every offload off on every link (no TSO, GSO or GRO:
# packets of the path MTU all the way, as the tunnel sends them).
offloads() {
    local n i
    for n in h1 gw1 gw2 h2; do
        for i in $(on $n ls /sys/class/net); do
            [[ $i == lo ]] || on $n ethtool -K "$i" tso "$1" gso "$1" gro "$1" >/dev/null 2>&1 || true
        done
    done
}
if command -v ethtool >/dev/null; then
    offloads off
    iperf plain-tcp-nooffload | tee -a "$RESULTS"
    offloads on
fi

for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; else me=2; peer=1; fi
    if [[ $TUNNELS == 2 ]]; then
        # One flow and SA pair per source address of h1; SPIs 0x1000/0x1002 into gw2 and
        # 0x1001/0x1003 into gw1 fall on different ipsec-in workers, and the outbound
        # SAs (numbered 1 and 2 on each gateway) on different ipsec-out workers.
        if [[ $gw == gw1 ]]; then a="198.18.1.10 to 198.18.2.20"; b="198.18.1.11 to 198.18.2.20"
        else a="198.18.2.20 to 198.18.1.10"; b="198.18.2.20 to 198.18.1.11"; fi
        cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from $a local 192.0.2.$me peer 192.0.2.$peer
flow esp from $b local 192.0.2.1$me peer 192.0.2.1$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
esp tunnel from 192.0.2.11 to 192.0.2.12 spi 0x1002:0x1003 enc aes-128-gcm enckey $KEY_C:$KEY_D
CONF
        continue
    fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$me.0/24 to 198.18.$peer.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
done
# The same SAs with UDP encapsulation (RFC 3948, port 4500 at both ends): a build whose
# arguments include "+udpencap" runs with these.
for gw in gw1 gw2; do
    sed -E 's/(spi 0x[0-9a-f]+:0x[0-9a-f]+)/\1 udpencap/' "$IT_TMP/$gw.conf" >"$IT_TMP/$gw-udp.conf"
done
# Counters (cheaper than a capture) on what gw1 forwards to the internet link: ESP (raw
# or in UDP 4500), and anything from the protected site in cleartext ("other").
on gw1 nft -f - <<'NFT'
table inet bench {
    chain post { type filter hook postrouting priority 200; policy accept;
        oifname "wan" meta l4proto esp counter comment "esp"
        oifname "wan" udp dport 4500 counter comment "esp"
        oifname "wan" ip saddr 198.18.0.0/16 counter comment "other"
    }
}
NFT
# Anything of the protected site that leaves gw1 in cleartext is kept, to show it if
# the check at the end fails (the filter keeps the capture small).
ip netns exec "$IT_ID-gw1" tcpdump -i wan -n -U -w "$IT_TMP/leak.pcap" "src net 198.18.0.0/16" >"$IT_TMP/leak-tcpdump.log" 2>&1 &
IT_PIDS+=("$!")
# esp_sent: ESP packets (raw or in UDP 4500) gw1 sent to the internet link so far. The
# chain's counter sees a UDP GSO send of encd's (a run of up to 64 ESP-in-UDP datagrams)
# as one packet, so while encd runs its own count of ESP packets protected is used
# (encstat's Prometheus output; encd's sends fail only when counted as such).
ESP_COUNT=nft
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/release/encstat}
[[ -x $ENCSTAT ]] || ENCSTAT=$IT_ROOT/.build/debug/encstat
esp_sent() {
    if [[ $ESP_COUNT == encd ]]; then
        on gw1 "$ENCSTAT" -o prometheus -S "$IT_TMP/gw1/run/encd.sock" | awk '$1 == "encd_esp_output_packets_total" { n = $2 } END { print n + 0 }'
        return
    fi
    on gw1 nft list chain inet bench post | awk '/comment "esp"/ { for (i = 1; i <= NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}
others_sent() { on gw1 nft list chain inet bench post | awk '/comment "other"/ { for (i = 1; i <= NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'; }
# cpu_sample: "gw1 gw2 softirq" in clock ticks (the IPsec process on each gateway:
# encd, or charon), and the ESP packets gw1 sent so far. PID1/PID2 name the processes.
PID1=; PID2=
cpu_sample() {
    echo "$(awk '{ print $14 + $15 }' /proc/$PID1/stat) $(awk '{ print $14 + $15 }' /proc/$PID2/stat) $(awk '/^cpu / { print $8 }' /proc/stat) $(esp_sent) $(awk '{ print $14 }' /proc/$PID1/stat) $(awk '{ print $14 }' /proc/$PID2/stat)"
}
# per_packet KIND BEFORE AFTER: microseconds of CPU per ESP packet gw1 sent.
per_packet() {
    python3 - "$1" "$2" "$3" "$(getconf CLK_TCK)" <<'PY'
import sys
kind, a, b, hz = sys.argv[1], list(map(int, sys.argv[2].split())), list(map(int, sys.argv[3].split())), int(sys.argv[4])
d = [y - x for x, y in zip(a, b)]
pkts = max(d[3], 1)
us = lambda t: t * 1e6 / hz / pkts
print("%-14s CPU per packet: gw1 %.2f us, gw2 %.2f us, softirq (whole machine) %.2f us; %d ESP packets; of which user time gw1 %.2f us, gw2 %.2f us"
      % (kind, us(d[0]), us(d[1]), us(d[2]), d[3], us(d[4]), us(d[5])))
PY
}
# loss_sample: for the 64-byte flood's loss points (encd runs only), each gateway's
# encd counters (drops by reason, queue and socket drops, encstat's Prometheus output)
# and every namespace's UDP receive errors (/proc/net/snmp: InErrors, of which
# RcvbufErrors: a socket that was full).
loss_sample() {
    local n
    for n in gw1 gw2; do
        on $n "$ENCSTAT" -o prometheus -S "$IT_TMP/$n/run/encd.sock" 2>/dev/null |
            awk -v n=$n '/^encd_(drops_total|queue_dropped_total|queue_user_dropped_total)/ { print n, $1, $2 }'
    done
    for n in gw1 gw2 h2; do
        on $n awk -v n=$n '/^Udp:/ { if (h) print n, "udp_in_errors", $4; h = 1 }' /proc/net/snmp
    done
}
# loss_report KIND BEFORE AFTER: what grew between the two samples (where the packets
# that were sent but not received went).
loss_report() {
    python3 - "$@" <<'PY'
import sys
kind, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
def parse(f):
    # "NAMESPACE SERIES VALUE" (a Prometheus series has no spaces in its labels)
    return {(w[0], w[1]): float(w[2]) for w in (line.split() for line in open(f)) if len(w) == 3}
x, y = parse(a), parse(b)
grown = ["%s %s %d" % (ns, series.replace("encd_", "").replace("_total", ""), v - x.get((ns, series), 0))
         for (ns, series), v in sorted(y.items()) if v - x.get((ns, series), 0) > 0]
print("%-14s loss points: %s" % (kind, "; ".join(grown) if grown else "none counted"))
PY
}
# measure LABEL: TCP and 64-byte UDP through whatever tunnel is up, with CPU per packet;
# then UDP at a fixed rate every path carries without loss (1400-byte datagrams at
# 100 Mbit/s, about 8,900 packets/s; 64-byte at 5 Mbit/s, about 9,800 packets/s): the
# CPU per packet at the same offered load, which an unlimited rate (all paths
# overloaded, the freed CPU going to iperf3 and softirq) does not give.
measure() {
    # Path MTUs learnt through the previous tunnel (libipsec's is smaller) go, so every
    # path starts from the same MTU.
    for n in h1 h2; do on $n ip route flush cache; done
    on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "no ping through the tunnel ($1)"
    local before after
    before=$(cpu_sample); iperf "$1-tcp" | tee -a "$RESULTS"; after=$(cpu_sample); per_packet "$1-tcp" "$before" "$after" | tee -a "$RESULTS"
    [[ $ESP_COUNT == encd ]] && loss_sample >"$IT_TMP/loss-before"
    before=$(cpu_sample); iperf "$1-udp" -u -l 64 -b 0 | tee -a "$RESULTS"; after=$(cpu_sample); per_packet "$1-udp" "$before" "$after" | tee -a "$RESULTS"
    if [[ $ESP_COUNT == encd ]]; then loss_sample >"$IT_TMP/loss-after"; loss_report "$1-udp" "$IT_TMP/loss-before" "$IT_TMP/loss-after" | tee -a "$RESULTS"; fi
    before=$(cpu_sample); iperf "$1-r1400" -u -l 1400 -b 100M | tee -a "$RESULTS"; after=$(cpu_sample); per_packet "$1-r1400" "$before" "$after" | tee -a "$RESULTS"
    before=$(cpu_sample); iperf "$1-r64" -u -l 64 -b 5M | tee -a "$RESULTS"; after=$(cpu_sample); per_packet "$1-r64" "$before" "$after" | tee -a "$RESULTS"
}

# strongSwan: one charon per gateway (kernel-libipsec before kernel-netlink, so ESP is
# done in userspace through its TUN device), PSK, AES-128-GCM-16 for ESP.
strongswan_conf() {   # GW LOCAL REMOTE LOCAL_TS REMOTE_TS
    local dir="$IT_TMP/ss-$1"
    mkdir -p "$dir/run"
    cat >"$dir/strongswan.conf" <<EOF
charon {
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac gcm kdf curve25519 kernel-libipsec kernel-netlink socket-default vici
  plugins { vici { socket = unix://$dir/run/charon.vici } }
  syslog { daemon { default = -1 } }
}
EOF
    cat >"$dir/swanctl.conf" <<EOF
connections { s2s { version = 2
    local_addrs = $2
    remote_addrs = $3
    proposals = aes128-sha256-x25519
    local { auth = psk
            id = $1 }
    remote { auth = psk }
    children { net { local_ts = $4
                     remote_ts = $5
                     esp_proposals = aes128gcm16
                     mode = tunnel } } } }
secrets { ike-bench { id-1 = gw1
                      id-2 = gw2
                      secret = "encd-bench-psk-0123456789abcdef" } }
EOF
}
strongswan_up() {
    local gw dir
    for gw in gw1 gw2; do
        dir="$IT_TMP/ss-$gw"
        rm -f "$dir/run/charon.pid" "$dir/run/charon.vici"
        # charon writes /run/charon.pid: a private /run in the namespace's mount space.
        STRONGSWAN_CONF="$dir/strongswan.conf" ip netns exec "$IT_ID-$gw" \
            sh -c "mount --bind '$dir/run' /run && exec $CHARON" >"$dir/charon.stdout" 2>&1 </dev/null &
        IT_PIDS+=("$!")
        for _ in $(seq 100); do [[ -S $dir/run/charon.vici ]] && break; sleep 0.1; done
        [[ -S $dir/run/charon.vici ]] || fail "charon in $gw did not start: $(tail -5 "$dir/charon.stdout")"
        swanctl --load-all --noprompt --uri "unix://$dir/run/charon.vici" --file "$dir/swanctl.conf" >"$dir/load.txt" 2>&1 \
            || fail "swanctl --load-all in $gw: $(tail -5 "$dir/load.txt")"
    done
    swanctl --initiate --child net --ike s2s --uri "unix://$IT_TMP/ss-gw1/run/charon.vici" --timeout 15 >"$IT_TMP/ss-initiate.txt" 2>&1 \
        || fail "strongSwan did not set up the tunnel: $(tail -10 "$IT_TMP/ss-initiate.txt")"
    PID1=$(cat "$IT_TMP/ss-gw1/run/charon.pid"); PID2=$(cat "$IT_TMP/ss-gw2/run/charon.pid")
}
strongswan_down() {
    local pid
    for pid in "$PID1" "$PID2"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$PID1" "$PID2"; do for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; done
}
if [[ $STRONGSWAN == 1 ]]; then
    strongswan_conf gw1 192.0.2.1 192.0.2.2 198.18.1.0/24 198.18.2.0/24
    strongswan_conf gw2 192.0.2.2 192.0.2.1 198.18.2.0/24 198.18.1.0/24
    echo "strongSwan: $($CHARON --version 2>/dev/null | head -1) with kernel-libipsec, AES-128-GCM-16"
fi

# split_build LABEL=PATH[,ARGS]: sets LAST_LABEL, ENCD, args (encd's) and CONF_SUFFIX
# ("-udp" when ARGS hold +udpencap: the UDP-encapsulated SAs).
split_build() {
    LAST_LABEL=${1%%=*}; ENCD=${1#*=}; args=(); CONF_SUFFIX=
    local all=() a
    if [[ $ENCD == *,* ]]; then read -r -a all <<<"${ENCD#*,}"; ENCD=${ENCD%%,*}; fi
    for a in "${all[@]}"; do if [[ $a == +udpencap ]]; then CONF_SUFFIX=-udp; else args+=("$a"); fi; done
}

for round in $(seq "$ROUNDS"); do
    for b in $BUILDS; do
        split_build "$b"; label=$LAST_LABEL
        for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw$CONF_SUFFIX.conf" "${args[@]}"; done
        PID1=$(encd_pid gw1); PID2=$(encd_pid gw2)
        ESP_COUNT=encd
        measure "$label"
        ESP_COUNT=nft
        for gw in gw1 gw2; do stop_encd $gw; done
        echo "$(date +%T.%N) after $label (round $round): $(others_sent) cleartext packets of the site on the wire so far"
    done
    if [[ $STRONGSWAN == 1 ]]; then
        # A stopped encd leaves its table failing closed: take it away first.
        for gw in gw1 gw2; do on $gw "$ENCD" -U -L "$IT_TMP/$gw/state" -R "$IT_TMP/$gw/run" >/dev/null 2>&1 || fail "encd -U in $gw"; done
        strongswan_up
        measure libipsec
        echo "$(date +%T.%N) libipsec measured (round $round): $(others_sent) cleartext packets of the site on the wire so far"
        strongswan_down
        echo "$(date +%T.%N) after libipsec (round $round): $(others_sent) cleartext packets of the site on the wire so far"
    fi
done
# Resident memory under a flood (issue #9: flat over 10 minutes): with
# BENCH_RSS_SECONDS=N, the last build runs on both gateways while h1 sends 1400-byte
# UDP at an unlimited rate for N seconds and a TCP stream beside it; encd's VmRSS on
# each gateway is read every 10 seconds: start (after the first 10 s), peak and end.
if [[ -n ${BENCH_RSS_SECONDS:-} ]]; then
    split_build "${BUILDS##* }"      # BENCH_ROUNDS=0: only this
    for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw$CONF_SUFFIX.conf" "${args[@]}"; done
    PID1=$(encd_pid gw1); PID2=$(encd_pid gw2)
    on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "no ping through the tunnel (memory run)"
    rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
    ip netns exec "$IT_ID-h2" iperf3 -s -p 5202 >/dev/null 2>&1 &
    IT_PIDS+=("$!"); srv1=$!
    ip netns exec "$IT_ID-h2" iperf3 -s -p 5203 >/dev/null 2>&1 &
    IT_PIDS+=("$!"); srv2=$!
    sleep 0.5
    ip netns exec "$IT_ID-h1" iperf3 -c 198.18.2.20 -p 5202 -u -l 1400 -b 0 -t "$BENCH_RSS_SECONDS" >"$IT_TMP/rss-udp.txt" 2>&1 &
    IT_PIDS+=("$!"); c1=$!
    ip netns exec "$IT_ID-h1" iperf3 -c 198.18.2.20 -p 5203 -t "$BENCH_RSS_SECONDS" >"$IT_TMP/rss-tcp.txt" 2>&1 &
    IT_PIDS+=("$!"); c2=$!
    samples=()
    for _ in $(seq $((BENCH_RSS_SECONDS / 10))); do
        sleep 10
        samples+=("$(rss "$PID1") $(rss "$PID2")")
    done
    wait $c1 $c2 2>/dev/null || true
    kill $srv1 $srv2 2>/dev/null || true
    printf '%s\n' "${samples[@]}" | awk -v s="$BENCH_RSS_SECONDS" -v label="${LAST_LABEL:-encd}" '
        NR == 1 { a1 = $1; a2 = $2 } { if ($1 > p1) p1 = $1; if ($2 > p2) p2 = $2; e1 = $1; e2 = $2 }
        END { printf "memory under a %d s flood (UDP 1400 B unlimited + TCP), %s, VmRSS KiB start / peak / end: gw1 %d / %d / %d, gw2 %d / %d / %d\n", s, label, a1, p1, e1, a2, p2, e2 }' | tee -a "$RESULTS"
    grep -h "receiver" "$IT_TMP/rss-udp.txt" "$IT_TMP/rss-tcp.txt" | tee -a "$RESULTS"
    for gw in gw1 gw2; do stop_encd $gw; done
fi
# Where the time goes (issue #9): with BENCH_PERF=N, the last build runs on both
# gateways and `perf record -a -g` samples the whole machine for N seconds of a TCP
# stream, then of 64-byte UDP at an unlimited rate; printed per thread (comm) and per
# symbol, kernel and user, without children.
if [[ -n ${BENCH_PERF:-} ]]; then
    command -v perf >/dev/null || fail "BENCH_PERF needs perf (Debian: linux-perf)"
    split_build "${BUILDS##* }"      # BENCH_ROUNDS=0: only this
    for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw$CONF_SUFFIX.conf" "${args[@]}"; done
    on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "no ping through the tunnel (perf run)"
    for kind in tcp udp64; do
        ip netns exec "$IT_ID-h2" iperf3 -s -1 -p 5204 >/dev/null 2>&1 &
        IT_PIDS+=("$!"); srv=$!
        sleep 0.5
        flags=(); [[ $kind == udp64 ]] && flags=(-u -l 64 -b 0)
        on h1 iperf3 -c 198.18.2.20 -p 5204 -t $((BENCH_PERF + 4)) "${flags[@]}" >"$IT_TMP/perf-$kind.txt" 2>&1 &
        IT_PIDS+=("$!"); cl=$!
        sleep 2
        perf record -a -g -o "$IT_TMP/perf-$kind.data" -- sleep "$BENCH_PERF" >/dev/null 2>&1 || fail "perf record"
        wait $cl 2>/dev/null || true; wait $srv 2>/dev/null || true
        # (reports go through files: `head` on a pipe would end the script with SIGPIPE)
        perf report -i "$IT_TMP/perf-$kind.data" --no-children --sort comm --stdio >"$IT_TMP/perf-$kind.comm" 2>/dev/null
        perf report -i "$IT_TMP/perf-$kind.data" --no-children --sort dso,sym --stdio -g none >"$IT_TMP/perf-$kind.sym" 2>/dev/null
        perf report -i "$IT_TMP/perf-$kind.data" --children --sort sym --stdio -g none >"$IT_TMP/perf-$kind.children" 2>/dev/null
        echo "== perf, ${LAST_LABEL:-encd}, $kind: share of all samples by thread"
        grep -E '^ +[0-9]' "$IT_TMP/perf-$kind.comm" | sed -n 1,12p
        echo "== perf, ${LAST_LABEL:-encd}, $kind: share of all samples by symbol (self time)"
        grep -E '^ +[0-9]' "$IT_TMP/perf-$kind.sym" | sed -n 1,45p
        # Where whole paths go (children included): the system calls and hooks that matter.
        echo "== perf, ${LAST_LABEL:-encd}, $kind: share of all samples under these functions (children included)"
        grep -E '^ +[0-9].*\] (__sys_sendto|__sys_sendmmsg|__sys_recvmmsg|__sys_recvfrom|ksys_read|ksys_write|do_iter_readv_writev|tun_get_user|tun_do_read|nf_hook_slow|nft_do_chain|nf_conntrack_in|ip_rcv|ip_local_deliver|raw_local_deliver|ip_forward|ip_output|__dev_queue_xmit|veth_xmit|fib_rules_lookup|fib_table_lookup|ip_route_input_noref|ip_route_output_key_hash|skb_clone|schedule|__schedule|try_to_wake_up|handle_softirqs|aes_gcm_|EVP_|swift_beginAccess|swift_endAccess)' \
            "$IT_TMP/perf-$kind.children" | sed -n 1,40p
        [[ -n ${BENCH_PERF_KEEP:-} ]] && cp "$IT_TMP/perf-$kind.data" "$BENCH_PERF_KEEP/perf-$kind.data"
    done
    for gw in gw1 gw2; do stop_encd $gw; done
fi
esp=$(esp_sent); other=$(others_sent)
if [[ ${other:-0} -ne 0 || ${esp:-0} -eq 0 ]]; then
    sleep 1; tcpdump -tttt -n -v -r "$IT_TMP/leak.pcap" 2>/dev/null | head -20
    fail "the tunnel runs leaked cleartext of the site on the wire ($esp ESP, $other cleartext)"
fi
echo "tunnel runs: gw1 sent $esp ESP packets (raw or in UDP) to the internet link, no cleartext of the site"
# Medians per build and kind, and each build against the first and against plain forwarding.
python3 - "$RESULTS" $BUILDS $([[ $STRONGSWAN == 1 ]] && echo libipsec=) <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
labels = [b.split("=", 1)[0] for b in sys.argv[2:]]
def med(prefix, pattern):
    vals = [float(m.group(1)) for l in lines if l.startswith(prefix + " ") for m in [re.search(pattern, l)] if m]
    return statistics.median(vals) if vals else float("nan")
tcp = r"TCP\s+([0-9.]+) Mbit/s received"
udp = r"([0-9.]+) pkt/s received"
cpu = lambda which: r"gw1 ([0-9.]+) us, gw2 ([0-9.]+) us, softirq \(whole machine\) ([0-9.]+) us; [0-9]+ ESP packets; of which user time gw1 ([0-9.]+) us, gw2 ([0-9.]+) us"
def cpus(prefix):
    rows = [list(map(float, m.groups())) for l in lines if l.startswith(prefix + " ") for m in [re.search(cpu(""), l)] if m]
    return [statistics.median(c) for c in zip(*rows)] if rows else [float("nan")] * 5
plain_tcp, plain_udp = med("plain-tcp", tcp), med("plain-udp", udp)
plain_off = med("plain-tcp-nooffload", tcp)
print()
print("plain forwarding: TCP %.0f Mbit/s (offloads off: %.0f), UDP 64 B %.0f pkt/s received" % (plain_tcp, plain_off, plain_udp))
print()
print("| build | TCP Mbit/s | x plain, offloads off | UDP 64 B pkt/s | x plain | CPU/pkt TCP: gw1 + gw2 + softirq (user gw1, gw2) us | CPU/pkt UDP: gw1 + gw2 + softirq (user gw1, gw2) us |")
print("|---|---|---|---|---|---|---|")
first = None
for l in labels:
    t, u = med(l + "-tcp", tcp), med(l + "-udp", udp)
    ct, cu = cpus(l + "-tcp"), cpus(l + "-udp")
    print("| %s | %.0f | %.3f | %.0f | %.3f | %.2f + %.2f + %.2f (%.2f, %.2f) | %.2f + %.2f + %.2f (%.2f, %.2f) |"
          % (l, t, t / plain_off, u, u / plain_udp, *ct, *cu))
    if l == "libipsec": continue
    if first is None: first = (l, t, u)
    else: print("|   %s / %s | %.2fx | | %.2fx | | | |" % (l, first[0], t / first[1], u / first[2]))
if "libipsec" in labels:
    lt, lu = med("libipsec-tcp", tcp), med("libipsec-udp", udp)
    for l in labels:
        if l != "libipsec":
            print("|   %s / libipsec | %.2fx | | %.2fx | | | |" % (l, med(l + "-tcp", tcp) / lt, med(l + "-udp", udp) / lu))
print()
print("| build | UDP 1400 B at 100 Mbit/s: pkt/s received | CPU/pkt: gw1 + gw2 + softirq (user gw1, gw2) us | UDP 64 B at 5 Mbit/s: pkt/s received | CPU/pkt: gw1 + gw2 + softirq (user gw1, gw2) us |")
print("|---|---|---|---|---|")
for l in labels:
    print("| %s | %.0f | %.2f + %.2f + %.2f (%.2f, %.2f) | %.0f | %.2f + %.2f + %.2f (%.2f, %.2f) |"
          % (l, med(l + "-r1400", udp), *cpus(l + "-r1400"), med(l + "-r64", udp), *cpus(l + "-r64")))
PY
