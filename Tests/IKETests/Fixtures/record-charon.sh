#!/bin/bash
# Two charons (PSK, IKEv2) in namespaces ikecap-a / ikecap-b over one veth; capture the
# exchange and the initiator's log at ike 4 / chd 4 (derived keys).
#   record-charon.sh [DIR]        (DIR default /tmp/ikecap)
# With LAN=1 each namespace gets its site's first address on lo, so the CHILD SA's
# routes install and charon logs the CHILD keys too.
set -u
D=${1:-/tmp/ikecap}
mkdir -p "$D"
cleanup() { for p in $(cat $D/pids 2>/dev/null); do kill $p 2>/dev/null; done; ip netns del ikecap-a 2>/dev/null; ip netns del ikecap-b 2>/dev/null; }
trap cleanup EXIT
rm -f $D/pids
ip netns add ikecap-a; ip netns add ikecap-b
ip link add ika type veth peer name ikb
ip link set ika netns ikecap-a; ip link set ikb netns ikecap-b
ip -n ikecap-a addr add 192.0.2.1/24 dev ika; ip -n ikecap-b addr add 192.0.2.2/24 dev ikb
ip -n ikecap-a link set ika up; ip -n ikecap-b link set ikb up; ip -n ikecap-a link set lo up; ip -n ikecap-b link set lo up
if [[ ${LAN:-0} == 1 ]]; then ip -n ikecap-a addr add 198.18.1.1/32 dev lo; ip -n ikecap-b addr add 198.18.2.1/32 dev lo; fi
for gw in a b; do
  if [[ $gw == a ]]; then l=192.0.2.1; r=192.0.2.2; lts=198.18.1.0/24; rts=198.18.2.0/24; id=gw1; else l=192.0.2.2; r=192.0.2.1; lts=198.18.2.0/24; rts=198.18.1.0/24; id=gw2; fi
  mkdir -p $D/$gw/run
  cat > $D/$gw/strongswan.conf <<C
charon {
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac gcm kdf curve25519 kernel-libipsec kernel-netlink socket-default vici
  plugins { vici { socket = unix://$D/$gw/run/charon.vici } }
  filelog { k { path = $D/$gw/charon.log
               default = 1
               ike = 4
               chd = 4
               enc = 4
               flush_line = yes } }
  syslog { daemon { default = -1 } }
}
C
  cat > $D/$gw/swanctl.conf <<C
connections { s2s { version = 2
    local_addrs = $l
    remote_addrs = $r
    proposals = ${PROPOSAL:-aes256gcm16-prfsha256-x25519}
    local { auth = psk
            id = $id }
    remote { auth = psk }
    children { net { local_ts = $lts
                     remote_ts = $rts
                     esp_proposals = aes128gcm16
                     mode = tunnel } } } }
secrets { ike-x { id-1 = gw1
                  id-2 = gw2
                  secret = "encd-ike-fixture-psk-0123456789" } }
C
  rm -f $D/$gw/charon.log
  STRONGSWAN_CONF=$D/$gw/strongswan.conf ip netns exec ikecap-$gw sh -c "mount --bind $D/$gw/run /run && exec /usr/lib/ipsec/charon" >$D/$gw/stdout 2>&1 &
  echo $! >> $D/pids
  for _ in $(seq 100); do [[ -S $D/$gw/run/charon.vici ]] && break; sleep 0.1; done
  swanctl --load-all --noprompt --uri unix://$D/$gw/run/charon.vici --file $D/$gw/swanctl.conf > $D/$gw/load.txt 2>&1
done
ip netns exec ikecap-a tcpdump -i ika -n -U -w $D/ike.pcap "udp port 500 or udp port 4500" >$D/tcpdump.log 2>&1 &
echo $! >> $D/pids
sleep 1
swanctl --initiate --child net --ike s2s --uri unix://$D/a/run/charon.vici --timeout 15 > $D/initiate.txt 2>&1; echo "initiate rc=$?"
# With LAN=1, one ping from site 1 to site 2 through the CHILD SA (kernel-libipsec
# 5.9.8 sends ESP in UDP 4500): the ESP packets for an interop check of the keys.
if [[ ${LAN:-0} == 1 ]]; then ip netns exec ikecap-a ping -c 1 -W 2 -I 198.18.1.1 198.18.2.1; fi
sleep 1
kill -INT $(tail -1 $D/pids); sleep 0.5
tcpdump -n -r $D/ike.pcap 2>/dev/null

# The fixtures: each IKE message's UDP payload (non-ESP marker removed) and the
# initiator's derived values with their hex dumps.
python3 - "$D" <<'PY'
import re, struct, sys
d = sys.argv[1]
raw = open(d + "/ike.pcap", "rb").read()
names = ["ike_sa_init_request", "ike_sa_init_response", "ike_auth_request", "ike_auth_response"]
off, n, esp = 24, 0, 0
while off < len(raw):
    incl = struct.unpack("<IIII", raw[off:off + 16])[2]; off += 16
    pkt = raw[off:off + incl]; off += incl
    ip = pkt[14:]; udp = ip[(ip[0] & 15) * 4:]; payload = udp[8:]
    if struct.unpack(">H", udp[2:4])[0] == 4500:
        if payload[:4] != b"\0\0\0\0":
            # ESP in UDP: kept whole (outer IPv4 and UDP headers), as encd receives it.
            open("%s/esp_%s.bin" % (d, "request" if ip[12:16] == bytes([192, 0, 2, 1]) else "reply"), "wb").write(ip[:struct.unpack(">H", ip[2:4])[0]])
            esp += 1; continue
        payload = payload[4:]
    if n < len(names): open("%s/%s.bin" % (d, names[n]), "wb").write(payload); n += 1
lines = open(d + "/a/charon.log").read().splitlines()
pat = re.compile(r"(shared Diffie|SKEYSEED|Sk_\w+ secret|octets|secret|(initiator|responder) key|prf)", re.I)
out, keep = [], False
for l in lines:
    body = re.sub(r"^.*?\[\w+\] ", "", l)
    if " => " in body and "bytes @" in body and pat.search(body):
        keep = True; out.append(re.sub(r" @ 0x[0-9a-f]+", "", body)); continue
    if keep and re.match(r"^\s*\d+: ", body): out.append(body); continue
    keep = False
    if re.search(r"(selected proposal|sending packet|received packet|established)", body): out.append(body)
open(d + "/initiator-ike4.log", "w").write("\n".join(out) + "\n")
PY
