#!/usr/bin/env bash
# Faults (issue #7, "Faults"): h1 — gw1 — internet — gw2 — h2, encd on both gateways,
# AES-GCM tunnel 0x1000:0x1001 (replay window 64). Sections (FAULT_SECTIONS picks some,
# default all, in this order):
#   control  control clients that stall (nothing, half a frame, one byte at a time) or
#            send garbage (random bytes, a huge length prefix, invalid or deeply nested
#            JSON, wrong types): encd answers encctl/encstat meanwhile and lives on
#   enc0     enc0 deleted by hand under a ping flood: nothing leaves in cleartext; what
#            encd does is recorded (and a restart brings traffic back)
#   nft      the table flushed, deleted, one chain flushed by hand under a ping flood,
#            and encd's own re-installation of the table (a tunable change) 24 times
#            under a UDP stream: no cleartext of the require flow may leave (contract 5)
#   kills    10 rounds of kill -9 at a random moment (0.2-2 s) of a UDP and ping stream,
#            restart: no (SPI, sequence) pair twice on the wire, sequence numbers only
#            go up, gw2's replay window accepts the new packets (gw2 counts no replay),
#            traffic flows again each round, zero cleartext
#   disk     gw1's state directory on a small tmpfs (private to encd's mount namespace),
#            filled, then read-only, under a UDP stream: encd refuses to send beyond what
#            it recorded (esp_sequence_reserve_failed), logs it, reuses nothing, and
#            recovers when the space is back
# A section that finds a leak, a crash or a broken promise records a DEFECT and the test
# goes on to the next one; the test fails at the end if any was recorded (each DEFECT
# line says what was done and what was seen).
source "$(dirname "$0")/lib.sh"
ENCCTL=${ENCCTL:-$IT_ROOT/.build/debug/encctl}
ENCSTAT=${ENCSTAT:-$IT_ROOT/.build/debug/encstat}
KILL_ROUNDS=${KILL_ROUNDS:-10}

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)
site_confs   # lib.sh: the tunnel between the two sites
start_encd gw1 "$IT_TMP/gw1.conf"
start_encd gw2 "$IT_TMP/gw2.conf"
SOCK1=$IT_TMP/gw1/run/encd.sock
on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "ping h1 -> h2 through the tunnel"
ok "tunnel h1 <-> h2 up"

DEFECTS=()
defect() { echo "DEFECT: $*" >&2; DEFECTS+=("$*"); }

# leaks FILE: cleartext packets between the two sites in a capture of the internet link.
leaks() { tcpdump -n -r "$1" 'net 198.18.0.0/16' 2>/dev/null | wc -l; }
# alive NAME: encd in NAME runs.
alive() { kill -0 "$(encd_pid "$1")" 2>/dev/null; }
# restart_gw1: encd on gw1 running afresh (SIGTERM first if it runs; new log file).
restart_gw1() {
    if alive gw1; then stop_encd gw1; else { wait "$(encd_pid gw1)"; } 2>/dev/null || true; fi
    mv "$IT_TMP/gw1-encd.log" "$IT_TMP/gw1-encd.$(date +%s%N).log"
    start_encd gw1 "$IT_TMP/gw1.conf"
}
# flows_again MAX: pings h1 -> h2 one at a time (each given 0.3 s) until one is answered
# (at most MAX); prints how many were lost first; returns 1 after MAX.
flows_again() {
    local lost=0
    until on h1 ping -c 1 -W 0.3 198.18.2.20 >/dev/null 2>&1; do
        lost=$((lost + 1))
        [[ $lost -lt $1 ]] || return 1
    done
    echo $lost
}
# counter NAME COUNTER: one of encd's counters in NAME (esp, ah and enc groups).
counter() {
    local g
    for g in esp ah enc; do on "$1" "$ENCSTAT" -S "$IT_TMP/$1/run/encd.sock" -s -p $g -j; done \
        | python3 -c 'import json, sys
dec, text, i, d = json.JSONDecoder(), sys.stdin.read(), 0, {}
while i < len(text):
    if text[i].isspace(): i += 1; continue
    o, i = dec.raw_decode(text, i); d.update(o["counters"])
print(d.get(sys.argv[1], 0))' "$2"
}
# big_capture NAME IF FILE: like lib.sh's capture, with headers only (64 bytes) and a
# large buffer, for streams of tens of thousands of packets per second.
big_capture() {
    local log="$IT_TMP/pcap-$1-${2//[^a-zA-Z0-9]/_}.log"
    ip netns exec "$IT_ID-$1" tcpdump -i "$2" -n -U -s 64 -B 65536 --immediate-mode -w "$3" >"$log" 2>&1 &
    IT_PIDS+=("$!")
    eval "PCAP_PID_${1//-/_}_${2//[^a-zA-Z0-9]/_}=$!"
    for _ in $(seq 50); do grep -q "listening" "$log" 2>/dev/null && return 0; sleep 0.1; done
    fail "tcpdump on $1 $2 did not start: $(cat "$log")"
}
capture_drops() { sed -nE 's/^([0-9]+) packets? dropped by kernel/\1/p' "$IT_TMP/pcap-$1-$2.log"; }
# max_between FILE FROM TO: the largest sequence number sent between two times (0: none).
max_between() {
    python3 - "$@" <<'PY'
import sys
lo, hi = float(sys.argv[2]), float(sys.argv[3])
print(max([int(s) for t, s in (l.split() for l in open(sys.argv[1])) if lo <= float(t) < hi] or [0]))
PY
}
# pcap_scan FILE: one pass over a capture of gw1's internet link (pcap, Ethernet):
# prints "cleartext other total distinct repeated increasing first last" where cleartext
# counts IPv4 packets with a 198.18.0.0/16 address, other the non-ESP IPv4 packets from
# 192.0.2.1, and the rest describe the sequence numbers of gw1's ESP with SPI 0x1000 in
# capture order; writes "time seq" of those to FILE.tseq.
pcap_scan() {
    python3 - "$1" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb")
magic = f.read(24)[:4]
order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
rec = struct.Struct(order + "IIII")
gw1 = bytes([192, 0, 2, 1])
clear = other = 0
seqs = []
out = open(sys.argv[1] + ".tseq", "w")
while True:
    h = f.read(16)
    if len(h) < 16:
        break
    sec, frac, incl, _ = rec.unpack(h)
    d = f.read(incl)
    if len(d) < 34 or d[12:14] != b"\x08\x00":
        continue
    ip = d[14:]
    proto, src, dst = ip[9], ip[12:16], ip[16:20]
    if src[:2] == b"\xc6\x12" or dst[:2] == b"\xc6\x12":
        clear += 1
    if src != gw1:
        continue
    if proto != 50:
        other += 1
        continue
    esp = ip[(ip[0] & 15) * 4:]
    if len(esp) >= 8 and esp[:4] == b"\x00\x00\x10\x00":
        seq = struct.unpack(">I", esp[4:8])[0]
        seqs.append(seq)
        out.write("%d.%06d %d\n" % (sec, frac // 1000 if nano else frac, seq))
inc = int(all(b > a for a, b in zip(seqs, seqs[1:])))
print(clear, other, len(seqs), len(set(seqs)), len(seqs) - len(set(seqs)), inc, seqs[0] if seqs else -1, seqs[-1] if seqs else -1)
PY
}
# start_stream SECONDS: small UDP datagrams h1 -> h2 as fast as python sends them, for
# at most SECONDS, in the background (STREAM_PID; stop_bg STREAM_PID ends it).
cat >"$IT_TMP/stream.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(200):
        try: s.sendto(b"stream", ("198.18.2.20", 9))
        except OSError: pass
PY
start_stream() {
    ip netns exec "$IT_ID-h1" python3 "$IT_TMP/stream.py" "$1" >/dev/null 2>&1 &
    STREAM_PID=$!
    IT_PIDS+=("$STREAM_PID")
}
# start_pinger: a ping flood h1 -> h2 (every 2 ms) in the background (PINGER_PID).
start_pinger() {
    ip netns exec "$IT_ID-h1" ping -n -q -i 0.002 -c 100000 -W 1 198.18.2.20 >/dev/null 2>&1 &
    PINGER_PID=$!
    IT_PIDS+=("$PINGER_PID")
}
stop_bg() { kill "$1" 2>/dev/null || true; { wait "$1"; } 2>/dev/null || true; }

# ======================================================================================
section_control() {
    cat >"$IT_TMP/abuse.py" <<'PY'
"""abuse.py SOCKET hold SECONDS | oneshot | crowd N SECONDS"""
import json, os, socket, struct, sys, threading, time

path, mode = sys.argv[1], sys.argv[2]

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s

def reply(s, timeout=6):
    """The first frame encd answers with (decoded), 'closed' or 'timeout'."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
            if len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
                break
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "error %s" % e.errno
    if len(data) < 4:
        return "closed"
    try:
        return json.loads(data[4:4 + struct.unpack(">I", data[:4])[0]])
    except ValueError:
        return "unparsable reply %r" % data[:60]

def frame(body):
    return struct.pack(">I", len(body)) + body

if mode == "hold":
    # Clients that hold a connection without completing a request; each reports when
    # (seconds after connecting) and how encd ended it.
    seconds = float(sys.argv[3])
    results = {}
    def run(name, fn):
        t0 = time.time()
        s = conn()
        try:
            r = fn(s, t0)
        except OSError as e:
            r = "error %s" % e.errno
        results[name] = {"after": round(time.time() - t0, 1), "reply": r if isinstance(r, str) else r.get("error", r)}
    def stall(s, t0):
        return reply(s, seconds)
    def half(s, t0):
        s.sendall(struct.pack(">I", 100) + b'{"version": 1,')
        return reply(s, seconds)
    def huge(s, t0):
        s.sendall(struct.pack(">I", 0xFFFFFFF0) + b"x" * 100)
        return reply(s, seconds)
    def trickle(s, t0):
        # One byte every second of a 60-byte request: each read comes within encd's
        # receive timeout, the whole request never does.
        body = frame(b'{"version": 1, "command": "status"' + b" " * 30 + b"}")
        s.settimeout(0.05)
        for i, b in enumerate(body):
            if time.time() - t0 > seconds:
                break
            try:
                s.sendall(bytes([b]))
            except OSError as e:
                return "closed by encd after %d bytes (%s)" % (i, e.errno)
            try:
                c = s.recv(65536)
                if not c:
                    return "closed by encd after %d bytes" % i
                return "answered after %d bytes: %r" % (i, c[4:100])
            except socket.timeout:
                pass
            time.sleep(1)
        return "still open after %.0f s" % (time.time() - t0)
    threads = [threading.Thread(target=run, args=(n, f)) for n, f in
               [("stall-%d" % i, stall) for i in range(5)] + [("half-frame", half), ("huge-length", huge), ("trickle", trickle)]]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(results, sort_keys=True))
elif mode == "oneshot":
    nested = b"[" * 1000000
    cases = [
        ("random bytes", os.urandom(4096)),
        ("invalid JSON", frame(b'{"version": 1, "command": "show", what: }')),
        ("JSON of the wrong shape", frame(b'[1, 2, 3]')),
        ("wrong types", frame(b'{"version": "1", "command": 5}')),
        ("unknown version", frame(b'{"version": 99, "command": "show"}')),
        ("unknown command", frame(b'{"version": 1, "command": "reboot"}')),
        ("not UTF-8", frame(b'{"version": 1, "command": "\xff\xfe"}')),
        ("zero length", frame(b"")),
        ("1 MB of nested arrays", frame(nested[:1048576])),
        ("1 MB command name", frame(b'{"version": 1, "command": "' + b"x" * 1048000 + b'"}')),
        ("frame one byte over the limit", struct.pack(">I", 1048577) + b"{" * 10),
        ("load of garbage config", frame(json.dumps({"version": 1, "command": "load", "config": "esp \x00\x01 from from spi spi\n" * 50}).encode())),
    ]
    out = {}
    for name, data in cases:
        try:
            s = conn()
            s.sendall(data)
            r = reply(s, 8)
        except OSError as e:
            r = "error %s" % e.errno
        out[name] = r if isinstance(r, str) else (("ok" if r.get("ok") else "error: %s" % r.get("error")) if isinstance(r, dict) else repr(r))
        try: s.close()
        except OSError: pass
    print(json.dumps(out, sort_keys=True))
elif mode == "tricklers":
    # N clients, each sending a request one byte a second for SECONDS.
    n, seconds = int(sys.argv[3]), float(sys.argv[4])
    socks = []
    for _ in range(n):
        try:
            socks.append(conn())
        except OSError:
            pass
    body = frame(b'{"version": 1, "command": "status"' + b" " * 200 + b"}")
    end = time.time() + seconds
    i = 0
    while time.time() < end and i < len(body):
        for s in list(socks):
            try:
                s.sendall(body[i:i + 1])
            except OSError:
                socks.remove(s)
        i += 1
        time.sleep(1)
    print(len(socks))
elif mode == "crowd":
    n, seconds = int(sys.argv[3]), float(sys.argv[4])
    socks = []
    for _ in range(n):
        try:
            socks.append(conn())
        except OSError:
            pass
    time.sleep(seconds)
    busy = 0
    for s in socks:
        r = reply(s, 0.2)
        if isinstance(r, dict) and "busy" in str(r.get("error")):
            busy += 1
    print(len(socks), busy)
PY
    local pid; pid=$(encd_pid gw1)
    # 1. Holders: 5 silent, a half frame, a 4 GB length prefix, a one-byte-a-second
    # trickle; encctl and encstat must be answered while they hold on.
    on gw1 python3 "$IT_TMP/abuse.py" "$SOCK1" hold 5 >"$IT_TMP/hold.out" 2>&1 &
    local holders=$!
    sleep 0.7
    local t0=$SECONDS
    on gw1 timeout 10 "$ENCCTL" -S "$SOCK1" -s sa >"$IT_TMP/ctl-during.out" 2>&1 || defect "control: encctl -s sa failed while 8 clients stalled: $(cat "$IT_TMP/ctl-during.out")"
    grep -q "spi 0x00001000" "$IT_TMP/ctl-during.out" || defect "control: encctl -s sa while clients stalled: $(cat "$IT_TMP/ctl-during.out")"
    on gw1 timeout 10 "$ENCSTAT" -S "$SOCK1" -s -p esp >/dev/null 2>&1 || defect "control: encstat failed while 8 clients stalled"
    ok "control: encctl -s sa and encstat answered while 8 clients stalled (in $((SECONDS - t0)) s)"
    wait $holders || fail "control: the stalling clients failed: $(cat "$IT_TMP/hold.out")"
    python3 - "$IT_TMP/hold.out" <<'PY' >"$IT_TMP/hold.txt"
import json, sys
r = json.load(open(sys.argv[1]))
for k in sorted(r):
    print("%-12s after %4.1f s: %s" % (k, r[k]["after"], r[k]["reply"]))
PY
    sed 's/^/    /' "$IT_TMP/hold.txt"
    # Docs/control-protocol.md: "A client has 2 seconds after connecting to send its
    # whole request; otherwise it gets the error `no request within 2 seconds`".
    grep -E '^stall' "$IT_TMP/hold.txt" | has -v "no request within 2 seconds" \
        && defect "control: a silent client was not told 'no request within 2 seconds': $(grep -E '^stall' "$IT_TMP/hold.txt" | head -1)"
    grep -q '^trickle.*still open' "$IT_TMP/hold.txt" \
        && defect "control: a client sending its request one byte a second keeps its connection (Docs/control-protocol.md promises 2 seconds for the whole request; SO_RCVTIMEO restarts with every byte, so 32 such clients hold every slot): $(grep '^trickle' "$IT_TMP/hold.txt")"
    ok "control: stalling clients ended by encd: $(grep -cE 'after +[0-3]\.[0-9] s' "$IT_TMP/hold.txt") of 8 within 4 s"

    # 2. Garbage, one connection each: an error reply or a close, never a crash.
    on gw1 timeout 120 python3 "$IT_TMP/abuse.py" "$SOCK1" oneshot >"$IT_TMP/oneshot.out" 2>&1 || fail "control: garbage clients: $(cat "$IT_TMP/oneshot.out")"
    python3 -c 'import json, sys
for k, v in sorted(json.load(open(sys.argv[1])).items()): print("    %-30s -> %s" % (k, v[:110]))' "$IT_TMP/oneshot.out"
    alive gw1 || defect "control: encd on gw1 died from garbage on the control socket: $(tail -5 "$IT_TMP/gw1-encd.log")"
    if alive gw1; then
        grep -q '"ok"' "$IT_TMP/oneshot.out" && defect "control: a garbage request was answered ok: $(cat "$IT_TMP/oneshot.out")"
        ok "control: 12 kinds of garbage each earned an error reply or a close; encd lives"
    fi

    # The consequence: 32 such clients hold every slot; encctl is refused meanwhile.
    on gw1 python3 "$IT_TMP/abuse.py" "$SOCK1" tricklers 32 5 >"$IT_TMP/tricklers.out" 2>&1 &
    local tricklers=$!
    sleep 3.5
    if on gw1 timeout 10 "$ENCCTL" -S "$SOCK1" -s sa >"$IT_TMP/ctl-tricklers.out" 2>&1; then
        ok "control: encctl answered while 32 clients trickled their requests"
    else
        defect "control: 32 clients sending their requests one byte a second lock encctl out (3.5 s after they connected, beyond the 2 s encd grants): $(head -1 "$IT_TMP/ctl-tricklers.out")"
    fi
    wait $tricklers || true
    ok "control: of 32 trickling clients $(cat "$IT_TMP/tricklers.out") were still connected after 5 s"

    # 3. A crowd: 40 connections held open (encd serves 32 at a time, the rest are told
    # it is busy); once encd has timed the silent ones out, encctl is served again.
    if alive gw1; then
        on gw1 python3 "$IT_TMP/abuse.py" "$SOCK1" crowd 40 1 >"$IT_TMP/crowd.out" 2>&1 || fail "control: crowd: $(cat "$IT_TMP/crowd.out")"
        read -r opened busy <"$IT_TMP/crowd.out"
        sleep 2.5
        on gw1 timeout 10 "$ENCCTL" -S "$SOCK1" -s sa >"$IT_TMP/ctl-after.out" 2>&1 || defect "control: encctl -s sa after a crowd of 40: $(cat "$IT_TMP/ctl-after.out")"
        ok "control: a crowd of $opened connections: $busy told encd is busy, the rest timed out; encctl answered afterwards"
    fi
    if alive gw1 && [[ $(encd_pid gw1) == "$pid" ]]; then
        on h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || defect "control: no traffic after the control-socket abuse"
        ok "control: encd (pid $pid) still runs and forwards"
    else
        restart_gw1
    fi
}

# ======================================================================================
section_enc0() {
    local pid; pid=$(encd_pid gw1)
    capture gw1 wan "$IT_TMP/enc0del.pcap"
    on h1 ping -n -i 0.01 -c 300 -W 1 198.18.2.20 >"$IT_TMP/enc0del-ping.out" 2>&1 &
    local flood=$!
    sleep 1
    local cpu0; cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    local guard0; guard0=$(on gw1 nft list chain inet encd ipsec_output | sed -nE '/oifname != "enc0"/s/.*counter packets ([0-9]+).*/\1/p')
    on gw1 ip link del enc0 || fail "enc0: ip link del enc0"
    sleep 3
    local cpu1; cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo "$cpu0")   # encd may have exited
    local guard1; guard1=$(on gw1 nft list chain inet encd ipsec_output | sed -nE '/oifname != "enc0"/s/.*counter packets ([0-9]+).*/\1/p')
    wait $flood || true
    sleep 0.5
    stop_capture gw1 wan
    local n; n=$(leaks "$IT_TMP/enc0del.pcap")
    [[ $n -eq 0 ]] || defect "enc0: $n cleartext packets between the sites on the internet link after 'ip link del enc0' in gw1: $(tcpdump -n -r "$IT_TMP/enc0del.pcap" 'net 198.18.0.0/16' 2>/dev/null | head -3)"
    local got; got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/enc0del-ping.out")
    ok "enc0: deleted by hand under a ping flood: $n cleartext packets on the internet link ($got of 300 echo requests answered, those before the deletion; the leak guard rule dropped $((guard1 - guard0)))"
    # What encd did (recorded, not asserted: the contract only asks that nothing leaks).
    local state="encd $(alive gw1 && echo "still runs" || echo "EXITED")"
    state+=", enc0 $(on gw1 ip link show enc0 >/dev/null 2>&1 && echo "recreated" || echo "not recreated")"
    state+=", CPU $(( (cpu1 - cpu0) ))/300 ticks in the 3 s after"
    local said; said=$(sed -n '/encd: started/,$p' "$IT_TMP/gw1-encd.log" | grep -v "encd: started" | grep -iE "enc0|link|tap|error" | head -2 | tr "\n" " " || true)
    state+=", log: ${said:-nothing}"
    local lost=-1
    if alive gw1; then lost=$(flows_again 10) || lost=-1; fi
    state+=", traffic $( [[ $lost -ge 0 ]] && echo "flows again" || echo "stays stopped")"
    ok "enc0: what encd did: $state"
    (( cpu1 - cpu0 < 200 )) || defect "enc0: encd on gw1 spins after enc0 was deleted ($((cpu1 - cpu0)) CPU ticks in 3 s)"
    # encd notices within a second and exits with status 1, so that its supervisor
    # (systemd's Restart=on-failure) starts it again; the table keeps failing closed.
    local status=0; wait "$pid" 2>/dev/null || status=$?
    ! alive gw1 && [[ $status -eq 1 ]] || defect "enc0: encd did not exit with status 1 after enc0 was deleted (status $status)"
    grep -q "enc0 was removed by someone else" "$IT_TMP/gw1-encd.log" || defect "enc0: encd logged nothing about the deleted enc0"
    on gw1 nft list table inet encd >/dev/null 2>&1 || defect "enc0: the table is gone after encd exited"
    restart_gw1
    lost=$(flows_again 60) || fail "enc0: no traffic after restarting encd"
    ok "enc0: after a restart of encd traffic flows again ($lost pings lost first)"
}

# ======================================================================================
section_nft() {
    local what n got after again
    for what in "nft flush table inet encd" "nft delete table inet encd" "nft flush chain inet encd spd_forward" "nft flush chain inet encd ipsec_output"; do
        capture gw1 wan "$IT_TMP/nft.pcap"
        on h1 ping -n -i 0.01 -c 200 -W 1 198.18.2.20 >"$IT_TMP/nft-ping.out" 2>&1 &
        local flood=$!
        sleep 1
        # encd's table is owned by encd's netlink socket: other processes may read it
        # but not change it (Linux >= 6.9 with NFT_TABLE_F_PERSIST; see encd(8)).
        local refused=allowed
        if ! on gw1 $what 2>/dev/null; then refused="refused (the table is owned by encd)"; fi
        wait $flood || true
        sleep 0.3
        stop_capture gw1 wan
        n=$(leaks "$IT_TMP/nft.pcap")
        got=$(sed -nE 's/.* ([0-9]+) received.*/\1/p' "$IT_TMP/nft-ping.out")
        after=$(on gw1 nft list table inet encd 2>/dev/null | grep -cE 'queue|drop' || true)
        again=$(grep -c "installed again" "$IT_TMP/gw1-encd.log" || true)
        local what_encd="encd $(alive gw1 && echo "runs on" || echo "exited"), $([[ $again -gt 0 ]] && echo "logged that it installed the table again" || echo "did not restore the table"); 3 s later the table has $after queue/drop rules"
        if [[ $n -ne 0 ]]; then
            defect "nft: '$what' in gw1 while encd runs, under a ping flood h1 -> h2 (100/s): $n cleartext packets of the require flow 198.18.1.0/24 -> 198.18.2.0/24 on the internet link, e.g. '$(tcpdump -n -r "$IT_TMP/nft.pcap" 'net 198.18.0.0/16' 2>/dev/null | sed -n 1p | cut -d' ' -f2-8)'; $what_encd"
        else
            ok "nft: '$what' under a ping flood: $refused; no cleartext on the internet link ($got of 200 answered; $what_encd)"
        fi
        restart_gw1
        flows_again 60 >/dev/null || fail "nft: no traffic after restarting encd"
    done
    # encd itself replaces the whole table (one transaction: delete and add, sets
    # filled) when a tunable the rules depend on changes, and at every start over a
    # table left in place. Under a fast UDP stream, 24 such replacements:
    big_capture gw1 wan "$IT_TMP/reinstall.pcap"
    start_stream 30
    sleep 0.5
    local i
    for i in $(seq 12); do
        on gw1 "$ENCCTL" -S "$SOCK1" -T ipsec.icmp_accept_clear=0 >/dev/null || fail "nft: encctl -T ipsec.icmp_accept_clear=0"
        sleep 0.2
        on gw1 "$ENCCTL" -S "$SOCK1" -T ipsec.icmp_accept_clear=1 >/dev/null || fail "nft: encctl -T ipsec.icmp_accept_clear=1"
        sleep 0.2
    done
    stop_bg "$STREAM_PID"
    sleep 0.3
    stop_capture gw1 wan
    n=$(leaks "$IT_TMP/reinstall.pcap")
    local esp; esp=$(tcpdump -n -r "$IT_TMP/reinstall.pcap" 'esp and src 192.0.2.1' 2>/dev/null | wc -l)
    if [[ $n -ne 0 ]]; then
        defect "nft: encd's own re-installation of its table (encctl -T ipsec.icmp_accept_clear=0/1, 24 times, under a UDP stream h1 -> h2, $esp ESP packets): $n cleartext packets on the internet link, e.g. '$(tcpdump -n -r "$IT_TMP/reinstall.pcap" 'net 198.18.0.0/16' 2>/dev/null | sed -n 1p | cut -d' ' -f2-8)'"
    else
        ok "nft: 24 re-installations of the table by encd under a UDP stream ($esp ESP packets): no cleartext"
    fi
    flows_again 60 >/dev/null || fail "nft: no traffic after the re-installations"
}

# ======================================================================================
section_kills() {
    local replay0 auth0 round
    replay0=$(counter gw2 esp_replay); auth0=$(counter gw2 esp_auth_failed)
    big_capture gw1 wan "$IT_TMP/kills.pcap"
    local summary=()
    for round in $(seq "$KILL_ROUNDS"); do
        echo "$round stream $(date +%s.%N)" >>"$IT_TMP/kills-events.txt"
        start_pinger
        start_stream 30
        local delay; delay=$(python3 -c 'import random; print("%.2f" % random.uniform(0.2, 2.0))')
        sleep "$delay"
        kill -KILL "$(encd_pid gw1)"
        echo "$round kill $(date +%s.%N)" >>"$IT_TMP/kills-events.txt"
        { wait "$(encd_pid gw1)"; } 2>/dev/null || true
        on gw1 nft list table inet encd >/dev/null 2>&1 || defect "kills: round $round: the table vanished with the SIGKILLed encd"
        sleep "$(python3 -c 'import random; print("%.2f" % random.uniform(0, 0.5))')"
        mv "$IT_TMP/gw1-encd.log" "$IT_TMP/gw1-encd-killed-$round.log"
        echo "$round start $(date +%s.%N)" >>"$IT_TMP/kills-events.txt"
        start_encd gw1 "$IT_TMP/gw1.conf"
        echo "$round started $(date +%s.%N)" >>"$IT_TMP/kills-events.txt"
        local lost; lost=$(flows_again 80) || fail "kills: round $round: no traffic after the restart"
        stop_bg "$PINGER_PID"; stop_bg "$STREAM_PID"
        summary+=("$delay s/$lost")
    done
    sleep 0.5
    stop_capture gw1 wan
    ok "kills: $KILL_ROUNDS rounds (kill after / pings lost before traffic flowed again): ${summary[*]}"
    local n other total distinct repeated increasing first last
    read -r n other total distinct repeated increasing first last < <(pcap_scan "$IT_TMP/kills.pcap")
    if [[ $n -ne 0 ]]; then
        # Each leaked packet with the round it fell in and its time from that round's events.
        tcpdump -n -tt -r "$IT_TMP/kills.pcap" 'net 198.18.0.0/16' 2>/dev/null >"$IT_TMP/kills-leaks.txt"
        python3 - "$IT_TMP/kills-events.txt" "$IT_TMP/kills-leaks.txt" <<'PY' >"$IT_TMP/kills-leaks-when.txt"
import sys
ev = {}
for l in open(sys.argv[1]):
    r, what, t = l.split(); ev.setdefault(int(r), {})[what] = float(t)
for l in open(sys.argv[2]):
    t = float(l.split()[0])
    r = max([r for r in ev if ev[r]["stream"] <= t] or [0])
    e = ev.get(r, {})
    rel = ", ".join("%+.3f s from %s" % (t - e[k], k) for k in ("stream", "kill", "start", "started") if k in e)
    print("round %d: %s [%s]" % (r, " ".join(l.split()[1:8]), rel))
PY
        defect "kills: $n cleartext packets between the sites on the internet link (kill -9 and restart of encd on gw1 under a ping flood and a UDP stream h1 -> h2):
$(sed 's/^/      /' "$IT_TMP/kills-leaks-when.txt")"
    fi
    [[ $other -eq 0 ]] || defect "kills: $other non-ESP IPv4 packets from gw1 on the internet link: $(tcpdump -n -r "$IT_TMP/kills.pcap" 'ip and src 192.0.2.1 and not esp' 2>/dev/null | head -3)"
    [[ $total -gt 1000 ]] || fail "kills: only $total ESP packets of SPI 0x1000 captured"
    [[ $repeated -eq 0 ]] || defect "kills: $repeated (SPI 0x1000, sequence) pairs appear twice on the wire"
    [[ $increasing -eq 1 ]] || defect "kills: gw1's sequence numbers went down at some point: $(python3 -c '
import sys
s = [int(l.split()[1]) for l in open(sys.argv[1])]
i = next(i for i in range(1, len(s)) if s[i] <= s[i-1]); print("after", s[i-1], "came", s[i])' "$IT_TMP/kills.pcap.tseq")"
    local replay1 auth1; replay1=$(counter gw2 esp_replay); auth1=$(counter gw2 esp_auth_failed)
    [[ $((replay1 - replay0)) -eq 0 && $((auth1 - auth0)) -eq 0 ]] || defect "kills: gw2 counted $((replay1 - replay0)) replayed and $((auth1 - auth0)) unauthentic packets from gw1"
    ok "kills: $total ESP packets of SPI 0x1000 on the wire (capture dropped $(capture_drops gw1 wan)), $distinct distinct, $repeated repeated, increasing throughout ($first .. $last); $n cleartext; gw2 counted 0 replays, 0 ICV failures"
    ok "kills: gw1 refused $(counter gw1 esp_replay) of gw2's packets as replayed since its last start (its inbound window restarts above what it recorded: designed)"
}

# ======================================================================================
section_disk() {
    local fs=$IT_TMP/statefs pid
    mkdir -p "$fs"
    on h1 ping -c 1 -W 2 198.18.2.20 >/dev/null || true
    stop_encd gw1   # clean: records exactly how far each SA got
    mv "$IT_TMP/gw1-encd.log" "$IT_TMP/gw1-encd.$(date +%s%N).log"
    # encd in a mount namespace of its own (ip netns exec makes one): the tmpfs lives
    # and dies with encd and never shows in the host's mounts. The state so far is
    # copied in, so the SAs go on from where they were.
    ip netns exec "$IT_ID-gw1" sh -c 'mount -t tmpfs -o size=64k,mode=0700 encd-state "$1" && cp -a "$2"/. "$1"/ && exec "$3" -d -f "$4" -L "$1" -R "$5"' \
        sh "$fs" "$IT_TMP/gw1/state" "$ENCD" "$IT_TMP/gw1.conf" "$IT_TMP/gw1/run" >>"$IT_TMP/gw1-encd.log" 2>&1 &
    pid=$!
    IT_PIDS+=("$pid")
    ENCD_PID_gw1=$pid
    for _ in $(seq 100); do grep -q "encd: started" "$IT_TMP/gw1-encd.log" && break; alive gw1 || fail "disk: encd on a tmpfs: $(tail -3 "$IT_TMP/gw1-encd.log")"; sleep 0.1; done
    grep -q "encd: started" "$IT_TMP/gw1-encd.log" || fail "disk: encd on a tmpfs did not start"
    # -r: encd's root too (entering a mount namespace resets the root, which inside a
    # chroot is not encd's).
    in_ns() { nsenter -t "$pid" -m -r "$@"; }
    in_ns findmnt -n -o FSTYPE,SIZE "$fs" | has tmpfs || fail "disk: no tmpfs at $fs in encd's mount namespace"
    ! findmnt -n "$fs" >/dev/null 2>&1 || fail "disk: the tmpfs shows in the host's mount namespace"
    local lost; lost=$(flows_again 60) || fail "disk: no traffic with the state on a tmpfs"
    ok "disk: encd on gw1 with its state on a 64 kB tmpfs (private mount namespace), traffic flows"

    big_capture gw1 wan "$IT_TMP/disk.pcap"
    # stream_until COUNTER: a UDP stream h1 -> h2 until COUNTER (gw1) has moved by
    # 2000, at most 40 s; prints the counter's delta.
    stream_until() {
        local c0 c; c0=$(counter gw1 "$1")
        start_stream 40
        for _ in $(seq 40); do
            sleep 1
            c=$(counter gw1 "$1")
            (( c - c0 >= 2000 )) && break
        done
        stop_bg "$STREAM_PID"
        echo $((c - c0))
    }
    out_limit() { in_ns cat "$fs/sequences" | awk '$1 == "out" && $3 == "0x00001000" { print $5 }'; }

    # 1. Full.
    in_ns dd if=/dev/zero of="$fs/fill" bs=4k >/dev/null 2>&1 || true
    local t_full; t_full=$(date +%s.%N)
    local used; used=$(in_ns df --output=pcent "$fs" | tail -1 | tr -d ' ')
    local limit_full; limit_full=$(out_limit)
    local failed; failed=$(stream_until esp_sequence_reserve_failed)
    local logged; logged=$(grep -m1 "cannot record sequence numbers" "$IT_TMP/gw1-encd.log" || true)
    local refused=0; on h1 ping -c 3 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 || refused=1
    if (( failed < 2000 )); then
        defect "disk: state directory full ($used): esp_sequence_reserve_failed moved only by $failed under a 40 s UDP stream"
    else
        ok "disk: state directory full ($used): esp_sequence_reserve_failed +$failed; pings refused: $([[ $refused -eq 1 ]] && echo yes || echo NO)"
    fi
    [[ -n $logged ]] && ok "disk: logged: ${logged#encd: }" || defect "disk: nothing logged while the state directory is full"
    [[ $refused -eq 1 ]] || defect "disk: with the state directory full and the reservation used up, pings still crossed"

    # 2. Space back.
    in_ns rm -f "$fs/fill"
    local t_back; t_back=$(date +%s.%N)
    lost=$(flows_again 60) || defect "disk: no traffic within 30 s after the space came back"
    local f0 f1; f0=$(counter gw1 esp_sequence_reserve_failed)
    on h1 ping -c 20 -i 0.05 -W 1 198.18.2.20 >/dev/null 2>&1 || true
    f1=$(counter gw1 esp_sequence_reserve_failed)
    [[ $f1 -eq $f0 ]] || defect "disk: esp_sequence_reserve_failed still moves after the space came back ($f0 -> $f1)"
    ok "disk: space back: traffic flows again ($lost pings lost first), new limit $(out_limit)"

    # 3. Read-only.
    in_ns mount -o remount,ro "$fs" || fail "disk: remount read-only"
    local t_ro; t_ro=$(date +%s.%N)
    local limit_ro; limit_ro=$(out_limit)
    failed=$(stream_until esp_sequence_reserve_failed)
    refused=0; on h1 ping -c 3 -i 0.2 -W 1 198.18.2.20 >/dev/null 2>&1 || refused=1
    (( failed >= 2000 )) || defect "disk: state directory read-only: esp_sequence_reserve_failed moved only by $failed under a 40 s UDP stream"
    [[ $refused -eq 1 ]] || defect "disk: with the state directory read-only and the reservation used up, pings still crossed"
    ok "disk: state directory read-only: esp_sequence_reserve_failed +$failed, pings refused: $([[ $refused -eq 1 ]] && echo yes || echo NO); log lines so far: $(grep -c "cannot record sequence numbers" "$IT_TMP/gw1-encd.log") (at most one a minute)"
    in_ns mount -o remount,rw "$fs"
    local t_rw; t_rw=$(date +%s.%N)
    lost=$(flows_again 60) || defect "disk: no traffic within 30 s after the state directory became writable"
    ok "disk: writable again: traffic flows ($lost pings lost first)"
    sleep 0.5
    stop_capture gw1 wan

    local n other total distinct repeated increasing first last
    read -r n other total distinct repeated increasing first last < <(pcap_scan "$IT_TMP/disk.pcap")
    [[ $repeated -eq 0 ]] || defect "disk: $repeated (SPI 0x1000, sequence) pairs appear twice on the wire"
    [[ $increasing -eq 1 ]] || defect "disk: gw1's sequence numbers went down at some point"
    cp "$IT_TMP/disk.pcap.tseq" "$IT_TMP/disk-tseq.txt"
    local max_full max_ro
    max_full=$(max_between "$IT_TMP/disk-tseq.txt" "$t_full" "$t_back")
    max_ro=$(max_between "$IT_TMP/disk-tseq.txt" "$t_ro" "$t_rw")
    (( max_full <= limit_full )) || defect "disk: while the state directory was full gw1 sent sequence number $max_full, above the $limit_full recorded there"
    (( max_ro <= limit_ro )) || defect "disk: while the state directory was read-only gw1 sent sequence number $max_ro, above the $limit_ro recorded there"
    ok "disk: highest sequence number sent while full $max_full <= recorded $limit_full; while read-only $max_ro <= recorded $limit_ro"
    [[ $n -eq 0 ]] || defect "disk: $n cleartext packets on the internet link"
    ok "disk: $total ESP packets of SPI 0x1000 captured (capture dropped $(capture_drops gw1 wan)), $repeated repeated, increasing: $increasing; $n cleartext"
    # The SAs' state back to the ordinary directory (the tmpfs dies with this encd).
    in_ns cat "$fs/sequences" >"$IT_TMP/gw1/state/sequences"
}

for section in ${FAULT_SECTIONS:-control enc0 nft kills disk}; do
    echo "== $section"
    t0=$SECONDS
    "section_$section"
    echo "   ($section: $((SECONDS - t0)) s)"
done
alive gw1 || fail "encd on gw1 is not running at the end"
alive gw2 || fail "encd on gw2 died: $(tail -5 "$IT_TMP/gw2-encd.log")"
if [[ ${#DEFECTS[@]} -gt 0 ]]; then
    printf 'DEFECT: %s\n' "${DEFECTS[@]}" >&2
    fail "${#DEFECTS[@]} defect(s) found"
fi
ok "no defect found"
