#!/usr/bin/env bash
# Two workers per stage (issue #9): each SA belongs to one ipsec-out worker (enc0's
# steering program picks the queue from the SA number in the mark) and one ipsec-in
# worker (its raw sockets keep their share of the SPIs).
#   1. two tunnels between the same gateways (SA pairs 0x1000:0x1001 and
#      0x1002:0x1003, whose SPIs fall on different workers), each carrying a 10 MB TCP
#      transfer each way at the same time: all four arrive intact;
#   2. on the wire every SA's sequence numbers rise strictly, packet after packet (one
#      writer per SA; nothing reordered or sent twice);
#   3. both ipsec-out and both ipsec-in threads at each gateway did work (their time
#      on the CPU during the transfers, /proc/PID/task/TID/schedstat, in nanoseconds),
#      so the traffic really was spread;
#   4. encd -w 1 still runs the same traffic with one worker each.
source "$(dirname "$0")/lib.sh"

sites
on h1 ip addr add 198.18.1.11/24 dev eth0
on gw1 ip addr add 192.0.2.11/24 dev wan
on gw2 ip addr add 192.0.2.12/24 dev wan
for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; a=10; b=11; else me=2; peer=1; a=20; b=20; fi
    if [[ $gw == gw1 ]]; then
        flows="flow esp from 198.18.1.10 to 198.18.2.20 local 192.0.2.1 peer 192.0.2.2
flow esp from 198.18.1.11 to 198.18.2.20 local 192.0.2.11 peer 192.0.2.12"
    else
        flows="flow esp from 198.18.2.20 to 198.18.1.10 local 192.0.2.2 peer 192.0.2.1
flow esp from 198.18.2.20 to 198.18.1.11 local 192.0.2.12 peer 192.0.2.11"
    fi
    cat >"$IT_TMP/$gw.conf" <<CONF
$flows
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
esp tunnel from 192.0.2.11 to 192.0.2.12 spi 0x1002:0x1003 enc aes-128-gcm enckey $KEY_C:$KEY_D
CONF
done

# thread_ns NAME COMM: "TID:nanoseconds on the CPU" of each of encd's threads named COMM.
thread_ns() {
    local pid; pid=$(encd_pid "$1")
    for t in /proc/"$pid"/task/*; do
        if [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]]; then echo "${t##*/}:$(cut -d' ' -f1 "$t/schedstat")"; fi
    done | sort | tr '\n' ' '
}
# worked BEFORE AFTER: the milliseconds each thread ran between two thread_ns samples.
worked() {
    python3 -c '
import sys
a = dict(x.split(":") for x in sys.argv[1].split())
b = dict(x.split(":") for x in sys.argv[2].split())
print(" ".join(str((int(b[t]) - int(a.get(t, 0))) // 1000000) for t in sorted(b)))' "$1" "$2"
}
# transfers: 10 MB each way between each of h1's addresses and h2, all four at once,
# over both tunnels.
transfers() {
    local pids=() senders=() port
    head -c 10000000 /dev/urandom >"$IT_TMP/blob"
    local want; want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
    for port in 5001 5002; do
        on h2 timeout 60 nc -4 -l -p $port >"$IT_TMP/got-$port" &
        pids+=($!)
    done
    on h1 timeout 60 nc -4 -l -s 198.18.1.10 -p 5003 >"$IT_TMP/got-5003" &
    pids+=($!)
    on h1 timeout 60 nc -4 -l -s 198.18.1.11 -p 5004 >"$IT_TMP/got-5004" &
    pids+=($!)
    sleep 0.5
    on h1 timeout 60 nc -N -s 198.18.1.10 198.18.2.20 5001 <"$IT_TMP/blob" & senders+=($!)
    on h1 timeout 60 nc -N -s 198.18.1.11 198.18.2.20 5002 <"$IT_TMP/blob" & senders+=($!)
    on h2 timeout 60 nc -N 198.18.1.10 5003 <"$IT_TMP/blob" & senders+=($!)
    on h2 timeout 60 nc -N 198.18.1.11 5004 <"$IT_TMP/blob" & senders+=($!)
    for p in "${senders[@]}"; do wait "$p" || fail "a TCP send failed"; done
    for p in "${pids[@]}"; do wait "$p" || fail "a TCP receive failed"; done
    for port in 5001 5002 5003 5004; do
        [[ $(sha256sum <"$IT_TMP/got-$port" | cut -d' ' -f1) == "$want" ]] || fail "TCP bytes to port $port differ"
    done
}

for gw in gw1 gw2; do start_encd $gw "$IT_TMP/$gw.conf" -w 2; done
for gw in gw1 gw2; do
    grep -q "(2 workers each)" "$IT_TMP/$gw-encd.log" || fail "$gw: encd did not start two workers: $(grep started "$IT_TMP/$gw-encd.log")"
done
on h1 ping -c 1 -W 2 -I 198.18.1.10 198.18.2.20 >/dev/null || fail "no ping through tunnel A"
on h1 ping -c 1 -W 2 -I 198.18.1.11 198.18.2.20 >/dev/null || fail "no ping through tunnel B"

# 1. Both tunnels, both ways, at once.
declare -A before
for gw in gw1 gw2; do for comm in encd-ipsec-out encd-ipsec-in; do before[$gw$comm]=$(thread_ns $gw $comm); done; done
pcap_start gw1 wan "$IT_TMP/wan.pcap"
transfers
pcap_stop gw1 wan
ok "four 10 MB TCP transfers (each tunnel, each way) at once arrived intact"

# 2. Sequence numbers per SA on the wire, in capture order.
tshark -r "$IT_TMP/wan.pcap" -Y esp -T fields -e esp.spi -e esp.sequence 2>/dev/null >"$IT_TMP/seq"
python3 - "$IT_TMP/seq" <<'PY' || fail "sequence numbers"
import sys
last, count = {}, {}
for line in open(sys.argv[1]):
    spi, seq = line.split()
    spi, seq = int(spi, 16), int(seq)
    if seq <= last.get(spi, 0):
        sys.exit(f"SPI {spi:#x}: sequence {seq} after {last[spi]}")
    last[spi] = seq
    count[spi] = count.get(spi, 0) + 1
want = {0x1000, 0x1001, 0x1002, 0x1003}
if set(count) != want or min(count.values()) < 5000:
    sys.exit(f"ESP per SPI: { {hex(k): v for k, v in count.items()} }")
print("ok: sequence numbers rise strictly for every SA: " + ", ".join(f"{k:#x} {v} packets" for k, v in sorted(count.items())))
PY

# 3. Every worker did a share of it: each one ran at least 5 ms during the transfers
# (some 7,000 packets each; an idle worker wakes once a second for microseconds).
for gw in gw1 gw2; do
    line=""
    for comm in encd-ipsec-out encd-ipsec-in; do
        ms=$(worked "${before[$gw$comm]}" "$(thread_ns $gw $comm)")
        read -r -a t <<<"$ms"
        [[ ${#t[@]} == 2 ]] || fail "$gw: ${#t[@]} threads named $comm (threads: $(cat /proc/"$(encd_pid $gw)"/task/*/comm | tr "\n" " "))"
        (( t[0] >= 5 && t[1] >= 5 )) || fail "$gw: a $comm worker did (almost) nothing: ms on the CPU $ms"
        line+=" $comm ${t[0]} and ${t[1]} ms;"
    done
    ok "$gw: every worker worked:$line"
done

# 4. One worker each.
for gw in gw1 gw2; do stop_encd $gw; start_encd $gw "$IT_TMP/$gw.conf" -w 1; done
grep -q "(1 worker each)" "$IT_TMP/gw1-encd.log" || fail "encd -w 1 did not start one worker"
transfers
[[ $(thread_ns gw1 encd-ipsec-out | wc -w) == 1 ]] || fail "encd -w 1 runs $(thread_ns gw1 encd-ipsec-out | wc -w) ipsec-out workers"
ok "with -w 1: one worker each, all four transfers intact"
