#!/usr/bin/env bash
# The control socket of a running encd, spoken to by a tiny python client (no encctl):
# h1 — gw1 — gw2 — h2, encd on both gateways. Checks status/show, counters that move
# exactly with pings, a broken load (state unchanged), a load and a delete, monitor
# events (SA added/deleted, soft and hard expiry, acquire), run-time tunables (ESP off
# and on, a new NAT-T port re-installing the table with its sets), SIGHUP with a good
# and a broken file, a non-root peer refused, and no key in encd's log.
source "$(dirname "$0")/lib.sh"

sites   # h1 — gw1 — internet — gw2 — h2 (lib.sh)

for gw in gw1 gw2; do
    if [[ $gw == gw1 ]]; then me=1; peer=2; mine=1; theirs=2; else me=2; peer=1; mine=2; theirs=1; fi
    cat >"$IT_TMP/$gw.conf" <<CONF
flow esp from 198.18.$mine.0/24 to 198.18.$theirs.0/24 local 192.0.2.$me peer 192.0.2.$peer
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x1000:0x1001 enc aes-128-gcm enckey $KEY_A:$KEY_B
CONF
    start_encd $gw "$IT_TMP/$gw.conf"
done
SOCK1=$IT_TMP/gw1/run/encd.sock

# The client (usage in encd_ctl.py).
CTL_PY=$(dirname "$0")/encd_ctl.py
ctl() { on gw1 python3 "$CTL_PY" "$SOCK1" "$@"; }
counter() { ctl '{"command":"counters"}' "r['counters']['$1']"; }
pings() { on h1 ping -c "$1" -i 0.2 -W 2 198.18.2.20 >/dev/null; }
# The policy as it stands: the snapshot generation, flows and SAs (not their ages).
state() {
    ctl '{"command":"status"}' "r['status']['generation']"
    ctl '{"command":"show"}' "[x['text'] for x in r['flows'] + r['sas']]"
}

# --- status and show
[[ $(ctl '{"command":"status"}' "r['ok'] and r['status']['sas']") == 2 ]] || fail "status"
[[ $(stat -c %a "$SOCK1") == 600 ]] || fail "socket mode $(stat -c %a "$SOCK1")"
show=$(ctl '{"command":"show","what":"all"}' "'\\n'.join(x['text'] for x in r['flows'] + r['sas'])")
want="flow esp out from 198.18.1.0/24 to 198.18.2.0/24 local 192.0.2.1 peer 192.0.2.2 type require
flow esp in from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.1 peer 192.0.2.2 type require
esp tunnel from 192.0.2.1 to 192.0.2.2 spi 0x00001000 enc aes-128-gcm
esp tunnel from 192.0.2.2 to 192.0.2.1 spi 0x00001001 enc aes-128-gcm"
[[ "$show" == "$want" ]] || fail "show: $show"
ctl '{"command":"show"}' | has "${KEY_A#0x}" && fail "a key in show without showKeys"
ctl '{"command":"show","what":"sa","showKeys":true}' | has "enckey ${KEY_A}" || fail "showKeys shows no key"
ok "status and show over the socket; keys only with showKeys"

# --- counters move exactly with traffic
out0=$(counter esp_output); in0=$(counter esp_input)
pings 5 || fail "ping h1 -> h2"
out1=$(counter esp_output); in1=$(counter esp_input)
(( out1 - out0 == 5 && in1 - in0 == 5 )) || fail "5 pings: esp_output +$((out1 - out0)), esp_input +$((in1 - in0))"
[[ $(ctl '{"command":"show","what":"sa"}' "[x['packets'] for x in r['sas']]") == "[5, 5]" ]] || fail "per-SA packets"
ok "5 pings: 5 output and 5 input ESP packets, per SA too"

# --- a broken load changes nothing
before=$(state)
bad=$(ctl '{"command":"load","configName":"broken.conf","config":"flow esp from 198.18.1.0/24 to 198.18.3.0/24 peer 192.0.2.3\nesp tunnel from 192.0.2.1 to nowhere spi 0x2000\n"}' \
      "(r['ok'], r['errors'])")
[[ $bad == "(False, ['broken.conf:2:"* ]] || fail "broken load: $bad"
[[ "$(state)" == "$before" ]] || fail "a broken load changed the state"
ok "a broken load is refused with file:line:column and changes nothing"

# --- monitor, load, delete, lifetimes, acquire
on gw1 python3 "$CTL_PY" "$SOCK1" --monitor sa-added,sa-deleted,sa-soft-expired,sa-hard-expired,acquire 20 \
    >"$IT_TMP/monitor.out" 2>&1 &
mon=$!
IT_PIDS+=("$mon")
for _ in $(seq 50); do grep -q subscribed "$IT_TMP/monitor.out" && break; sleep 0.1; done
extra='flow esp from 198.18.1.0/24 to 198.18.9.0/24 peer 192.0.2.9 type require\nesp tunnel from 192.0.2.1 to 192.0.2.9 spi 0x3000 lifetime soft seconds 2 lifetime hard seconds 3 enc aes-128-gcm enckey '$KEY_C'\n'
[[ $(ctl '{"command":"load","configName":"extra.conf","config":"'"$extra"'"}' "r['ok']") == True ]] || fail "load"
[[ $(ctl '{"command":"show","what":"sa"}' "len(r['sas'])") == 3 ]] || fail "load: not 3 SAs"
[[ $(ctl '{"command":"show","what":"sa"}' "[x['packets'] for x in r['sas'] if x['spi'] == 0x1000]") == "[5]" ]] \
    || fail "the load reset an unaffected SA"
pings 2 || fail "ping after the load"
sleep 4   # the loaded SA passes its soft and hard lifetimes
[[ $(ctl '{"command":"show","what":"sa"}' "len(r['sas'])") == 2 ]] || fail "hard lifetime: SA not removed"
on h1 ping -c 1 -W 1 198.18.9.1 >/dev/null 2>&1 && fail "a require flow without SA let a packet through"
wait $mon || fail "monitor did not see every event: $(cat "$IT_TMP/monitor.out")"
python3 - "$IT_TMP/monitor.out" <<'PY' || fail "hard expiry events: $(cat "$IT_TMP/monitor.out")"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
hard = [e for e in events if e["kind"] == "sa-hard-expired"]
assert hard and hard[0]["text"].startswith("SA hard lifetime expired, removed: esp tunnel from 192.0.2.1 to 192.0.2.9 spi 0x00003000 "), hard
assert hard[0]["sa"] == {"proto": "esp", "spi": 0x3000, "source": "192.0.2.1", "destination": "192.0.2.9", "direction": "out"}, hard
gone = [e for e in events if e["kind"] == "sa-deleted" and e.get("sa", {}).get("spi") == 0x3000]
assert gone and gone[0]["reason"] == "hard-lifetime", gone
PY
ok "monitor: SA added, soft and hard expiry (SA removed, require flow drops), acquire"
[[ $(ctl '{"command":"delete","configName":"extra.conf","config":"'"$extra"'"}' "r['ok']") == True ]] || fail "delete"
[[ $(ctl '{"command":"show","what":"flow"}' "len(r['flows'])") == 2 ]] || fail "delete left flows"
ok "delete removes the flows the text names"

# --- tunables at run time
[[ $(ctl '{"command":"tunable","name":"net.inet.esp.enable","value":"0"}' "r['ok']") == True ]] || fail "esp off"
d0=$(counter esp_disabled_output)
pings 2 && fail "ping with ESP disabled"
(( $(counter esp_disabled_output) - d0 >= 2 )) || fail "esp_disabled_output did not count"
ctl '{"command":"tunable","name":"net.inet.esp.enable","value":"1"}' >/dev/null
pings 2 || fail "ping with ESP enabled again"
ok "net.inet.esp.enable 0 drops and counts, 1 restores"
[[ $(ctl '{"command":"tunable","name":"net.inet.esp.udpencap_port","value":"4501"}' "r['ok']") == True ]] || fail "udpencap_port"
grep -q "re-installed (NAT-T port 4501" "$IT_TMP/gw1-encd.log" || fail "table not re-installed for port 4501"
# UDP to the new port with a non-zero first word (ESP-in-UDP) now reaches encd.
u0=$(counter esp_udp_encap_input)
on gw2 python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes([0, 0, 0x99, 0x99]) + bytes(24), ('192.0.2.1', 4501))"
sleep 0.3
(( $(counter esp_udp_encap_input) - u0 == 1 )) || fail "UDP to port 4501 not queued to encd"
out0=$(counter esp_output)
pings 3 || fail "ping after the table was re-installed"
(( $(counter esp_output) - out0 == 3 )) || fail "traffic not protected after the port change (sets lost?)"
ok "a new NAT-T port re-installs the table with its sets: traffic stays protected"

# --- SIGHUP: a good file, then a broken one
echo "flow esp from 198.18.1.0/24 to 198.18.8.0/24 peer 192.0.2.8" >>"$IT_TMP/gw1.conf"
kill -HUP "$(cat "$IT_TMP/gw1/run/encd.pid")"   # encd itself (encd_pid is the job's shell)
for _ in $(seq 50); do grep -q "encd: reloaded" "$IT_TMP/gw1-encd.log" && break; sleep 0.1; done
[[ $(ctl '{"command":"show","what":"flow"}' "len(r['flows'])") == 4 ]] || fail "SIGHUP with a good file"
before=$(state)
echo "flow esp from nowhere" >>"$IT_TMP/gw1.conf"
kill -HUP "$(cat "$IT_TMP/gw1/run/encd.pid")"   # encd itself (encd_pid is the job's shell)
for _ in $(seq 50); do grep -q "reload refused" "$IT_TMP/gw1-encd.log" && break; sleep 0.1; done
grep -q "reload refused, running configuration unchanged" "$IT_TMP/gw1-encd.log" || fail "broken reload not reported"
grep -q "gw1.conf:4:" "$IT_TMP/gw1-encd.log" || fail "broken reload: no file:line in the log"
[[ "$(state)" == "$before" ]] || fail "a broken SIGHUP changed the state"
pings 2 || fail "ping after a broken reload"
ok "SIGHUP applies a good file and leaves the state alone on a broken one"

# --- peers that are not root
chmod o+x "$IT_TMP" "$IT_TMP/gw1" "$IT_TMP/gw1/run"   # lib.sh makes them 0700 (umask 077)
on gw1 setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 - "$SOCK1" <<'PY' && fail "nobody could connect through a 0600 socket"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(1)
PY
chmod 666 "$SOCK1"   # past the file mode: SO_PEERCRED still refuses
cp "$CTL_PY" "$IT_TMP/ctl.py"; chmod 644 "$IT_TMP/ctl.py"
r=$(on gw1 setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 "$IT_TMP/ctl.py" "$SOCK1" \
    '{"command":"flush","what":"all"}' "(r['ok'], r['error'])")
[[ $r == "(False, 'permission denied')" ]] || fail "uid 65534: $r"
[[ $(ctl '{"command":"show","what":"sa"}' "len(r['sas'])") == 2 ]] || fail "a refused flush changed something"
grep -q "control socket: refused uid 65534" "$IT_TMP/gw1-encd.log" || fail "refusal not logged"
ok "uid 65534 is refused (file mode, then SO_PEERCRED) and logged"

# --- no key in any log
for k in "$KEY_A" "$KEY_B"; do
    grep -qi "${k#0x}" "$IT_TMP"/gw*-encd.log && fail "a key in encd's log"
done
ok "no key in encd's logs"
