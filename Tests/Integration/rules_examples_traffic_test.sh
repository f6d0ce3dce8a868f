#!/usr/bin/env bash
# The example rulesets of Rules/examples/ with real traffic, as an administrator runs
# them (nat-traversal is run the same way by scripts/demo.sh, demo_test.sh). For each
# of host-transport, site-to-site, same-subnet and mss-clamping, in namespaces of its
# own: the keys are made by the "# keys:" commands of the example's ipsec.conf, once,
# and copied to both ends (files 0600); ipsec.conf is installed as it is on the first
# end and, on the second, derived by the substitution the example documents (sed);
# rules.nft is loaded with only its interface-name defines set to this network's names
# (and, on the second end, the peer's defines swapped the way the example says); encd
# runs on both ends. Then traffic shows what the example's README claims:
#
#   host-transport  192.0.2.10 (h1) ====== ESP transport ====== 192.0.2.20 (h2)
#     ping and TCP on the SSH port between the hosts; TCP to another port and
#     cleartext sent past h1's encd are refused by h2; the link carries only ESP, and
#     every ESP packet, decrypted with the example's keys, holds ICMP or TCP directly
#     (next header 1/6: transport mode, no inner IP header); encctl shows transport
#     SAs; the rules' counters on enc0 moved (input: ping and SSH; output: the
#     cleartext towards the peer).
#   site-to-site    h1 198.18.1.10 — A 192.0.2.1 ==== ESP ==== 192.0.2.2 B — h2 198.18.2.20
#     ping and TCP (SSH port) both ways between the sites, and the README's
#     `ping -I 198.18.1.1 198.18.2.1` from A; h2 sees h1's real address (no NAT in the
#     tunnel); any other service from the other site is dropped; the internet link
#     carries only ESP; the "cleartext out/in through enc0" counters moved on both
#     gateways; what leaves on WAN outside the tunnel is masqueraded.
#   same-subnet     h1 198.18.1.10 — A ==== ESP ==== B — h2 198.18.1.20 (both sites 198.18.1.0/24)
#     h1 reaches h2 at 198.18.12.20 (ping, TCP), h2 reaches h1 at 198.18.11.10; each
#     host sees the other only at its mapped address; only ESP between the gateways;
#     the forward counters on enc0 moved and saw the real addresses.
#   mss-clamping    the site-to-site network and rules, plus mss-clamping's rules.nft
#     and ipsec.conf (AES-256-CBC + HMAC-SHA2-512): without the clamp a SYN crosses
#     the tunnel with MSS 1460; with it the SYN at the far LAN carries enc0's MTU less
#     40, and so does the SYN-ACK back, and no "fragmentation needed" reaches the
#     sender; the forward clamp rules' counters moved; on a connection the gateway
#     itself opens (from 198.18.1.1) the postrouting clamp sets its SYN's MSS, so the far
#     host's segments need no "fragmentation needed" either; no segment of the
#     gateway's own TCP that crosses enc0 is larger than enc0's MTU; only ESP crosses
#     the internet link.
#
# A check that the example itself fails (it does not do what its comments or README
# say) is reported as "FAIL (example): ..." and the test goes on with the rest, then
# exits 1 listing them; anything else that fails stops the test at once.
source "$(dirname "$0")/lib.sh"
BIN=$IT_ROOT/.build/debug
EX=$IT_ROOT/Rules/examples
T0=$SECONDS

# ---------------------------------------------------------------- helpers

# defect MESSAGE: the example does not do what it says. Reported at once; the test
# goes on with the other checks and examples and fails at the end.
DEFECTS=()
defect() { echo "FAIL (example): $*" >&2; DEFECTS+=("$*"); }

# keys EXAMPLE: runs the "# keys:" commands of EXAMPLE's ipsec.conf once, as an
# administrator would, into $IT_TMP/EXAMPLE/keys.
keys() {
    mkdir -m 0700 -p "$IT_TMP/$1/keys"
    sed -n 's/^# keys: //p' "$EX/$1/ipsec.conf" | (cd "$IT_TMP/$1" && umask 077 && bash -e) \
        || fail "$1: the # keys: commands of ipsec.conf failed"
    [[ -n $(ls "$IT_TMP/$1/keys") ]] || fail "$1: the # keys: commands made no key"
}
# install_conf EXAMPLE NODE [SED-ARGS...]: EXAMPLE's ipsec.conf (through sed with the
# given expressions, if any) as NODE's ipsec.conf, next to a copy of the keys; prints
# the configuration's path. Everything 0600 (encd refuses key files others can read).
install_conf() {
    local ex=$1 node=$2; shift 2
    local dir="$IT_TMP/$ex/etc-$node"
    mkdir -m 0700 -p "$dir"
    cp -r "$IT_TMP/$ex/keys" "$dir/"
    if (($#)); then sed "$@" "$EX/$ex/ipsec.conf" >"$dir/ipsec.conf"; else cp "$EX/$ex/ipsec.conf" "$dir/ipsec.conf"; fi
    chmod 0600 "$dir/ipsec.conf"
    local f
    for f in "$dir/ipsec.conf" "$dir"/keys/*; do
        [[ $(stat -c %a "$f") == 600 ]] || fail "$f has mode $(stat -c %a "$f")"
    done
    echo "$dir/ipsec.conf"
}
# load_rules NODE FILE [SED-ARGS...]: FILE through sed with the given expressions into
# nft -f in NODE.
load_rules() {
    local node=$1 file=$2; shift 2
    if (($#)); then sed "$@" "$file" >"$IT_TMP/rules-$node.nft"; else cp "$file" "$IT_TMP/rules-$node.nft"; fi
    on "$node" nft -f "$IT_TMP/rules-$node.nft" || fail "$node: nft -f of $file (adapted) failed"
}
# rule_count NODE FAMILY TABLE CHAIN TEXT: the packet count of the first rule of the
# chain whose text contains TEXT.
rule_count() {
    local n
    n=$(on "$1" nft list chain "$2" "$3" "$4" | grep -F -- "$5" | sed -nE 's/.*counter packets ([0-9]+).*/\1/p' | head -1)
    echo "${n:-0}"
}
# xfer FROM TO ADDRESS PORT BYTES [SOURCE]: BYTES random bytes over TCP from namespace
# FROM (from SOURCE if given) to a listener in TO at ADDRESS:PORT; fails unless they
# arrive intact (lib.sh's tcp_transfer, on any port).
xfer() {
    local from=$1 to=$2 addr=$3 port=$4 bytes=$5 src=${6:-} srv want
    head -c "$bytes" /dev/urandom >"$IT_TMP/blob"
    want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
    on "$to" timeout 20 nc -4 -l -p "$port" >"$IT_TMP/got" &
    srv=$!
    sleep 0.5
    on "$from" timeout 20 nc -N ${src:+-s "$src"} "$addr" "$port" <"$IT_TMP/blob" || fail "TCP send $from -> $addr:$port"
    wait $srv || fail "TCP receive at $to ($addr:$port)"
    [[ $(sha256sum <"$IT_TMP/got" | cut -d' ' -f1) == "$want" ]] || fail "TCP bytes $from -> $addr:$port differ"
}
# pull CLIENT SERVER ADDRESS PORT BYTES [SOURCE]: CLIENT connects (from SOURCE if
# given) to a listener in SERVER at ADDRESS:PORT that sends BYTES random bytes back;
# fails unless they arrive intact.
pull() {
    local client=$1 server=$2 addr=$3 port=$4 bytes=$5 src=${6:-} srv want
    head -c "$bytes" /dev/urandom >"$IT_TMP/blob"
    want=$(sha256sum <"$IT_TMP/blob" | cut -d' ' -f1)
    on "$server" timeout 20 nc -4 -N -l -p "$port" <"$IT_TMP/blob" &
    srv=$!
    sleep 0.5
    on "$client" timeout 20 nc -d ${src:+-s "$src"} "$addr" "$port" >"$IT_TMP/got" || fail "TCP from $addr:$port to $client"
    wait $srv || fail "TCP send at $server ($addr:$port)"
    [[ $(sha256sum <"$IT_TMP/got" | cut -d' ' -f1) == "$want" ]] || fail "TCP bytes $addr:$port -> $client differ"
}
# blocked FROM TO ADDRESS PORT: with a listener in TO at ADDRESS:PORT, a connection
# from FROM gets nowhere (its SYN is dropped on the way).
blocked() {
    local from=$1 to=$2 addr=$3 port=$4 srv
    ip netns exec "$IT_ID-$to" timeout 6 nc -4 -l -p "$port" >/dev/null 2>&1 &
    srv=$!
    sleep 0.3
    if on "$from" timeout 4 nc -N -w 2 "$addr" "$port" </dev/null >/dev/null 2>&1; then
        kill "$srv" 2>/dev/null; wait "$srv" 2>/dev/null
        fail "TCP $from -> $addr:$port connected"
    fi
    kill "$srv" 2>/dev/null || true
    wait "$srv" 2>/dev/null || true
}
# wire_only FILE PROTO: every IPv4 packet in FILE is PROTO (esp); prints how many.
wire_only() {
    local other n
    other=$(tcpdump -n -r "$1" "ip and not $2" 2>/dev/null | wc -l)
    n=$(tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l)
    [[ $other -eq 0 ]] || fail "$1: $other IPv4 packets that are not $2: $(tcpdump -n -r "$1" "ip and not $2" 2>/dev/null | head -3)"
    echo "$n"
}
# syn_mss FILE DPORT ACK: the MSS options of the SYNs (ACK=0) or SYN-ACKs (ACK=1) in
# FILE of connections to port DPORT (SYN-ACKs: from it), one a line.
syn_mss() {
    local port=tcp.dstport
    [[ $3 == 1 ]] && port=tcp.srcport
    tshark -r "$1" -Y "tcp.flags.syn == 1 && tcp.flags.ack == $3 && $port == $2" -T fields -e tcp.options.mss_val 2>/dev/null
}
# encd_stats NODE: encstat -s -p enc on NODE's encd.
encd_stats() { on "$1" "$BIN/encstat" -S "$IT_TMP/$1/run/encd.sock" -s -p enc; }
# done_with NODE...: stops their encd (the other examples do not need its CPU).
done_with() { local n; for n in "$@"; do stop_encd "$n"; done; }

# two_sites PREFIX HOST_A HOST_B GW_A_LAN GW_B_LAN: h1 — A — internet (192.0.2.1 —
# 192.0.2.2) — B — h2 in namespaces PREFIX-h1, PREFIX-a, PREFIX-b, PREFIX-h2 (CIDR).
two_sites() {
    local p=$1
    ns "$p-h1"; ns "$p-a"; ns "$p-b"; ns "$p-h2"
    link "$p-h1" eth0 "$2" "$p-a" lan "$4"
    link "$p-a" wan 192.0.2.1/24 "$p-b" wan 192.0.2.2/24
    link "$p-b" lan "$5" "$p-h2" eth0 "$3"
    router "$p-a"; router "$p-b"
    on "$p-h1" ip route add default via "${4%/*}"
    on "$p-h2" ip route add default via "${5%/*}"
    on "$p-a" ip route add default via 192.0.2.2
    on "$p-b" ip route add default via 192.0.2.1
}

# ================================================================ host-transport
E=host-transport
ns ht-h1; ns ht-h2
link ht-h1 eth0 192.0.2.10/24 ht-h2 eth0 192.0.2.20/24
keys $E
# The other host "swaps this_host and other_host" (ipsec.conf's header).
c1=$(install_conf $E ht-h1)
c2=$(install_conf $E ht-h2 -e 's/^this_host = "192.0.2.10"$/this_host = "192.0.2.20"/' \
                            -e 's/^other_host = "192.0.2.20"$/other_host = "192.0.2.10"/')
grep -q '^this_host = "192.0.2.20"' "$c2" && grep -q '^other_host = "192.0.2.10"' "$c2" || fail "$E: the swap did not apply"
# rules.nft: WAN is the real interface; on the other host the peer is 192.0.2.10.
load_rules ht-h1 "$EX/$E/rules.nft" -e 's/^define WAN = .*/define WAN = "eth0"/'
load_rules ht-h2 "$EX/$E/rules.nft" -e 's/^define WAN = .*/define WAN = "eth0"/' -e 's/^define PEER = .*/define PEER = 192.0.2.10/'
start_encd ht-h1 "$c1"
start_encd ht-h2 "$c2"

capture ht-h2 eth0 "$IT_TMP/ht-link.pcap"
# -s 70: 78 bytes of ICMP, a multiple of the cipher block less the 2-byte trailer, so
# transport (no inner header) and tunnel (20 more bytes) give different ESP sizes.
on ht-h1 ping -c 3 -i 0.2 -W 2 -s 70 192.0.2.20 >/dev/null || fail "$E: ping h1 -> h2"
on ht-h2 ping -c 3 -i 0.2 -W 2 -s 70 192.0.2.10 >/dev/null || fail "$E: ping h2 -> h1"
ok "$E: ping 192.0.2.10 <-> 192.0.2.20 both ways"
xfer ht-h1 ht-h2 192.0.2.20 22 1000000
xfer ht-h2 ht-h1 192.0.2.10 22 1000000
ok "$E: TCP 1 MB to the SSH port both ways, bytes intact"
stop_capture ht-h2 eth0
esp=$(wire_only "$IT_TMP/ht-link.pcap" esp)
[[ $esp -gt 100 ]] || fail "$E: only $esp ESP packets on the link"
ok "$E: the link carried $esp ESP packets and no other IPv4"

# Transport mode, read from the wire: decrypt every ESP packet with the example's own
# key files (SPI 0x3000 is 10->20, 0x3001 is 20->10: the SA line's order), check its
# ICV, and read the next header: ICMP (1) or TCP (6) directly, never IP-in-IP (4).
res=$(python3 - "$IT_TMP/ht-link.pcap" "$IT_TMP/$E/keys" <<'PY'
import sys, hmac, hashlib
from scapy.all import PcapReader, IP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
kd = sys.argv[2]
def key(n): return bytes.fromhex(open(f"{kd}/{n}").read().strip())
sas = {0x3000: (key("enc-10-to-20"), key("auth-10-to-20"), "192.0.2.10"),
       0x3001: (key("enc-20-to-10"), key("auth-20-to-10"), "192.0.2.20")}
nh = {}; bad = []; pings = set()
for p in PcapReader(sys.argv[1]):
    if IP not in p or p[IP].proto != 50: continue
    esp = bytes(p[IP].payload)[: p[IP].len - p[IP].ihl * 4]
    spi = int.from_bytes(esp[:4], "big")
    if spi not in sas: bad.append(f"spi {spi:#x}"); continue
    ek, ak, src = sas[spi]
    if p[IP].src != src: bad.append(f"spi {spi:#x} from {p[IP].src}"); continue
    if hmac.new(ak, esp[:-16], hashlib.sha256).digest()[:16] != esp[-16:]:
        bad.append(f"ICV of spi {spi:#x} seq {int.from_bytes(esp[4:8], 'big')}"); continue
    d = Cipher(algorithms.AES(ek), modes.CBC(esp[8:24])).decryptor()
    pt = d.update(esp[24:-16]) + d.finalize()
    n = pt[-1]; inner = pt[: len(pt) - 2 - pt[-2]]
    nh[n] = nh.get(n, 0) + 1
    if n == 1 and inner[0] in (0, 8) and len(inner) == 78: pings.add((inner[0], spi))
print(" ".join(f"{k}:{v}" for k, v in sorted(nh.items())), "|", len(pings), "|", "; ".join(bad[:3]))
PY
) || fail "$E: decrypting the captured ESP failed"
IFS='|' read -r nhs npings bad <<<"$res"
[[ -z ${bad// /} ]] || fail "$E: captured ESP that does not fit the example's SAs: $bad"
for x in $nhs; do [[ ${x%%:*} == 1 || ${x%%:*} == 6 ]] || fail "$E: ESP next headers $nhs (4 = an inner IP header: tunnel mode)"; done
[[ ${npings// /} -eq 4 ]] || fail "$E: echo requests and replies of 78 bytes directly inside ESP both ways not found ($res)"
ok "$E: every ESP packet decrypts with the example's keys to ICMP or TCP directly (next header:count $nhs): transport mode"
on ht-h1 "$BIN/encctl" -S "$IT_TMP/ht-h1/run/encd.sock" -s sa >"$IT_TMP/ht-sa.txt" || fail "$E: encctl -s sa"
[[ $(grep -c "esp transport" "$IT_TMP/ht-sa.txt") -eq 2 ]] || fail "$E: encctl -s sa shows no two ESP transport SAs: $(cat "$IT_TMP/ht-sa.txt")"
ok "$E: encctl -s sa on 192.0.2.10 shows the two ESP transport SAs (spi 0x3000, 0x3001)"

# The rules: ping and SSH from the peer only through enc0, counted; cleartext to the
# peer counted on its way out through enc0.
# (Only the first packet of each ping and connection reaches them: the rest is
# "ct state established".)
for h in ht-h1 ht-h2; do
    ping_in=$(rule_count $h inet host input 'icmp type echo-request counter')
    ssh_in=$(rule_count $h inet host input 'tcp dport 22 counter')
    ((ping_in >= 1 && ssh_in >= 1)) || fail "$E: $h's counters: echo requests in through enc0 $ping_in, SSH in $ssh_in"
    ok "$E: $h's input rules accepted the peer's ping ($ping_in) and SSH ($ssh_in) only through enc0, counted"
    out=$(rule_count $h inet host postrouting 'oifname "enc0"')
    if ((out > 100)); then
        ok "$E: $h's postrouting rule counted $out cleartext packets towards the peer through enc0"
    else
        defect "$E: $h's output rule 'oifname \"enc0\" ip daddr \$PEER counter' counted $out packets although the host sent the peer over 1000 through enc0 (the output hook sees the interface of the route before encd's [X] reroutes the packet into enc0; a postrouting chain sees enc0)"
    fi
done
# Any other service of h2 is closed to h1, though the connection would come protected.
blocked ht-h1 ht-h2 192.0.2.20 5001
ok "$E: TCP to port 5001 of 192.0.2.20 dropped (only SSH and ping through enc0)"
# Cleartext from the peer on the real interface: an echo request written onto h1's
# link past h1's encd (and past netfilter) gets no answer and reaches no rule.
before=$(rule_count ht-h2 inet host input 'icmp type echo-request counter')
capture ht-h2 eth0 "$IT_TMP/ht-clear.pcap"
on ht-h1 python3 - <<'PY' || fail "$E: sending a cleartext echo request"
from scapy.all import Ether, IP, ICMP, sendp, get_if_hwaddr
import subprocess, json
nb = json.loads(subprocess.run(["ip", "-j", "neigh", "show", "192.0.2.20"], capture_output=True, text=True).stdout or "[]")
mac = nb[0]["lladdr"] if nb and "lladdr" in nb[0] else "ff:ff:ff:ff:ff:ff"
for s in range(3):
    sendp(Ether(dst=mac, src=get_if_hwaddr("eth0")) / IP(src="192.0.2.10", dst="192.0.2.20") / ICMP(id=4242, seq=s) / b"clear",
          iface="eth0", verbose=False)
PY
sleep 1
stop_capture ht-h2 eth0
sent=$(tcpdump -n -r "$IT_TMP/ht-clear.pcap" 'icmp and src 192.0.2.10 and icmp[icmptype] == 8' 2>/dev/null | wc -l)
from_h2=$(tcpdump -n -r "$IT_TMP/ht-clear.pcap" 'ip and src 192.0.2.20' 2>/dev/null | wc -l)
after=$(rule_count ht-h2 inet host input 'icmp type echo-request counter')
[[ $sent -eq 3 ]] || fail "$E: the cleartext echo requests did not reach h2's link ($sent seen)"
[[ $from_h2 -eq 0 && $after -eq $before ]] || fail "$E: cleartext echo requests from the peer answered ($from_h2 packets from h2) or counted ($before -> $after)"
ok "$E: 3 cleartext echo requests from 192.0.2.10 on the link: no answer, no rule reached"
done_with ht-h1 ht-h2

# ================================================================ site-to-site
E=site-to-site
two_sites s2s 198.18.1.10/24 198.18.2.20/24 198.18.1.1/24 198.18.2.1/24
keys $E
ca=$(install_conf $E s2s-a)
# "on B, swap the four macros (local_gw/peer_gw, local_net/peer_net)"
cb=$(install_conf $E s2s-b -e 's/^local_gw = "192.0.2.1"$/local_gw = "192.0.2.2"/' -e 's/^peer_gw = "192.0.2.2"$/peer_gw = "192.0.2.1"/' \
                           -e 's|^local_net = "198.18.1.0/24"$|local_net = "198.18.2.0/24"|' -e 's|^peer_net = "198.18.2.0/24"$|peer_net = "198.18.1.0/24"|')
[[ $(grep -cE '^(local_gw = "192.0.2.2"|peer_gw = "192.0.2.1"|local_net = "198.18.2.0/24"|peer_net = "198.18.1.0/24")$' "$cb") -eq 4 ]] || fail "$E: the swap did not apply"
# rules.nft is A's; B's is the same with the peer's defines swapped like ipsec.conf's.
s2s_rules() {   # NODE PEER_GW LOCAL_NET PEER_NET [extra file]
    load_rules "$1" "$EX/site-to-site/rules.nft" -e 's/^define WAN = .*/define WAN = "wan"/' -e 's/^define LAN = .*/define LAN = "lan"/' \
        -e "s|^define PEER_GW = .*|define PEER_GW = $2|" -e "s|^define LOCAL_NET = .*|define LOCAL_NET = $3|" -e "s|^define PEER_NET = .*|define PEER_NET = $4|"
}
s2s_rules s2s-a 192.0.2.2 198.18.1.0/24 198.18.2.0/24
s2s_rules s2s-b 192.0.2.1 198.18.2.0/24 198.18.1.0/24
# What h2 sees: echo requests by source (the test's own table, on the host).
on s2s-h2 nft -f - <<'NFT'
table inet seen {
    chain input { type filter hook input priority 0; policy accept;
        icmp type echo-request ip saddr 198.18.1.10 counter comment "from-h1-real"
        icmp type echo-request ip saddr 192.0.2.0/24 counter comment "from-a-gateway"
    }
}
NFT
start_encd s2s-a "$ca"
start_encd s2s-b "$cb"

capture s2s-a wan "$IT_TMP/s2s-wan.pcap"
on s2s-h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "$E: ping h1 -> h2"
on s2s-h2 ping -c 3 -i 0.2 -W 2 198.18.1.10 >/dev/null || fail "$E: ping h2 -> h1"
ok "$E: ping 198.18.1.10 <-> 198.18.2.20 both ways through the tunnel"
on s2s-a ping -c 2 -i 0.2 -W 2 -I 198.18.1.1 198.18.2.1 >/dev/null || fail "$E: the README's ping -I 198.18.1.1 198.18.2.1 on A"
ok "$E: the README's check on A, ping -I 198.18.1.1 198.18.2.1, answered"
xfer s2s-h1 s2s-h2 198.18.2.20 22 2000000
xfer s2s-h2 s2s-h1 198.18.1.10 22 1000000
ok "$E: TCP to the SSH port, 2 MB h1 -> h2 and 1 MB h2 -> h1, bytes intact"
[[ $(nft_counter s2s-h2 seen input from-h1-real) -eq 3 && $(nft_counter s2s-h2 seen input from-a-gateway) -eq 0 ]] \
    || fail "$E: h2 did not see h1's 3 echo requests from 198.18.1.10 (the tunnel's traffic is not NATed)"
ok "$E: h2 saw h1's echo requests from 198.18.1.10 (the tunnel's cleartext is not masqueraded)"
a_out0=$(nft_counter s2s-a gateway forward "cleartext out through enc0")
blocked s2s-h1 s2s-h2 198.18.2.20 5001
blocked s2s-h2 s2s-h1 198.18.1.10 5001
a_out1=$(nft_counter s2s-a gateway forward "cleartext out through enc0")
((a_out1 > a_out0)) || fail "$E: A did not send h1's SYN to port 5001 through enc0"
ok "$E: TCP port 5001 between the sites dropped both ways by the receiving gateway (from the other site: ping and SSH only)"
stop_capture s2s-a wan
esp=$(wire_only "$IT_TMP/s2s-wan.pcap" esp)
[[ $esp -gt 1000 ]] || fail "$E: only $esp ESP packets between the gateways"
ok "$E: between the gateways $esp ESP packets and no other IPv4"
for g in s2s-a s2s-b; do
    o=$(nft_counter $g gateway forward "cleartext out through enc0"); i=$(nft_counter $g gateway forward "cleartext in through enc0")
    ((o > 100 && i > 100)) || fail "$E: $g's counters: cleartext out through enc0 $o, in $i"
    ok "$E: $g's \"cleartext out/in through enc0\" counters: $o out, $i in"
done
# Outside the tunnel, the site reaches the internet masqueraded behind A's WAN address.
capture s2s-b wan "$IT_TMP/s2s-inet.pcap"
on s2s-h1 ping -c 2 -i 0.2 -W 2 192.0.2.2 >/dev/null || fail "$E: ping h1 -> 192.0.2.2 (the internet) outside the tunnel"
stop_capture s2s-b wan
masq=$(tcpdump -n -r "$IT_TMP/s2s-inet.pcap" 'icmp[icmptype] == 8 and src 192.0.2.1 and dst 192.0.2.2' 2>/dev/null | wc -l)
real=$(tcpdump -n -r "$IT_TMP/s2s-inet.pcap" 'src net 198.18.0.0/16' 2>/dev/null | wc -l)
[[ $masq -eq 2 && $real -eq 0 ]] || fail "$E: h1's pings to the internet: $masq from 192.0.2.1, $real with a site address"
ok "$E: h1 -> 192.0.2.2 outside the tunnel leaves in the clear masqueraded as 192.0.2.1"
done_with s2s-a s2s-b

# ================================================================ same-subnet
E=same-subnet
two_sites ss 198.18.1.10/24 198.18.1.20/24 198.18.1.1/24 198.18.1.1/24
keys $E
ca=$(install_conf $E ss-a)
# B "writes flow esp from 198.18.1.0/24 to 198.18.11.0/24 local 192.0.2.2 peer 192.0.2.1
# with the same SA line": taken from that comment of the file itself.
bflow=$(sed -nE 's/^#[[:space:]]+(flow esp from .* local 192\.0\.2\.2 peer 192\.0\.2\.1)[[:space:]]*$/\1/p' "$EX/$E/ipsec.conf")
[[ -n $bflow ]] || fail "$E: ipsec.conf documents no flow for B"
cb=$(install_conf $E ss-b -e "s|^flow esp from .*|$bflow|")
grep -qx "$bflow" "$cb" || fail "$E: B's flow not in place"
# rules.nft is A's; "Gateway B: swap 11 and 12".
load_rules ss-a "$EX/$E/rules.nft" -e 's/^define LAN = .*/define LAN = "lan"/'
load_rules ss-b "$EX/$E/rules.nft" -e 's/^define LAN = .*/define LAN = "lan"/' \
    -e 's/198\.18\.11\./198.18.@@./g' -e 's/198\.18\.12\./198.18.11./g' -e 's/198\.18\.@@\./198.18.12./g'
grep -q '^define LOCAL_AS = 198.18.12.0/24' "$IT_TMP/rules-ss-b.nft" && grep -q '^define PEER_AS = 198.18.11.0/24' "$IT_TMP/rules-ss-b.nft" \
    || fail "$E: the swap of 11 and 12 did not apply"
# What the hosts see (their own table), and what the gateways' forward hook sees on
# enc0 (a test table beside the example's, same hook and priority).
for h in ss-h1 ss-h2; do
    on $h nft -f - <<'NFT'
table inet seen {
    chain input { type filter hook input priority 0; policy accept;
        icmp type echo-request ip saddr 198.18.11.10 counter comment "from-h1-mapped"
        icmp type echo-request ip saddr 198.18.12.20 counter comment "from-h2-mapped"
        icmp type echo-request ip saddr 198.18.1.0/24 counter comment "from-real-subnet"
    }
}
NFT
done
for g in ss-a ss-b; do
    on $g nft -f - <<'NFT'
table inet probe {
    chain forward { type filter hook forward priority filter; policy accept;
        oifname "enc0" ip saddr 198.18.1.0/24 counter comment "out real source"
        iifname "enc0" ip daddr 198.18.1.0/24 counter comment "in real destination"
    }
}
NFT
done
start_encd ss-a "$ca"
start_encd ss-b "$cb"

capture ss-a wan "$IT_TMP/ss-wan.pcap"
on ss-h1 ping -c 3 -i 0.2 -W 2 198.18.12.20 >/dev/null || fail "$E: ping h1 -> 198.18.12.20 (B's .20 as B shows it)"
ok "$E: h1 (198.18.1.10 at A) pings B's 198.18.1.20 at 198.18.12.20"
on ss-h2 ping -c 3 -i 0.2 -W 2 198.18.11.10 >/dev/null || fail "$E: ping h2 -> 198.18.11.10 (A's .10 as A shows it)"
ok "$E: h2 (198.18.1.20 at B) pings A's 198.18.1.10 at 198.18.11.10"
xfer ss-h1 ss-h2 198.18.12.20 5001 2000000
ok "$E: TCP 2 MB h1 -> 198.18.12.20, bytes intact"
stop_capture ss-a wan
[[ $(nft_counter ss-h2 seen input from-h1-mapped) -eq 3 && $(nft_counter ss-h1 seen input from-h2-mapped) -eq 3 ]] \
    || fail "$E: the hosts did not see each other's 3 echo requests at the mapped addresses"
for h in ss-h1 ss-h2; do
    [[ $(nft_counter $h seen input from-real-subnet) -eq 0 ]] || fail "$E: $h saw echo requests from 198.18.1.0/24"
done
ok "$E: h2 sees h1 only as 198.18.11.10, h1 sees h2 only as 198.18.12.20"
esp=$(wire_only "$IT_TMP/ss-wan.pcap" esp)
[[ $esp -gt 1000 ]] || fail "$E: only $esp ESP packets between the gateways"
ok "$E: between the gateways $esp ESP packets and no other IPv4"
for g in ss-a ss-b; do
    o=$(rule_count $g ip same_subnet forward 'cleartext out through enc0'); i=$(rule_count $g ip same_subnet forward 'cleartext in through enc0')
    ro=$(nft_counter $g probe forward "out real source"); ri=$(nft_counter $g probe forward "in real destination")
    ((o > 3 && i > 3)) || fail "$E: $g's counters: cleartext out through enc0 $o, in $i"
    ((ro == o && ri == i)) || fail "$E: $g: of $o packets out through enc0 $ro had a real source, of $i in $ri a real destination"
    ok "$E: $g's forward counters on enc0: $o out (real sources), $i in (real destinations)"
done
done_with ss-a ss-b

# ================================================================ mss-clamping
E=mss-clamping
two_sites mss 198.18.1.10/24 198.18.2.20/24 198.18.1.1/24 198.18.2.1/24
keys $E
ca=$(install_conf $E mss-a)
# The file is A's side and says nothing of B's: B's flow is A's mirrored (the SA line
# names A and B and stays).
cb=$(install_conf $E mss-b -e 's|^flow esp from 198\.18\.1\.0/24 to 198\.18\.2\.0/24 local 192\.0\.2\.1 peer 192\.0\.2\.2$|flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1|')
grep -q '^flow esp from 198.18.2.0/24 to 198.18.1.0/24 local 192.0.2.2 peer 192.0.2.1$' "$cb" || fail "$E: B's flow not in place"
# "Add it next to the site-to-site rules": those first, the clamp after a first SYN.
s2s_rules mss-a 192.0.2.2 198.18.1.0/24 198.18.2.0/24
s2s_rules mss-b 192.0.2.1 198.18.2.0/24 198.18.1.0/24
start_encd mss-a "$ca"
start_encd mss-b "$cb"
mtu_a=$(on mss-a cat /sys/class/net/enc0/mtu); mtu_b=$(on mss-b cat /sys/class/net/enc0/mtu)
[[ $mtu_a -lt 1500 ]] || fail "$E: enc0's MTU on A is $mtu_a"

capture mss-h2 eth0 "$IT_TMP/mss-h2-noclamp.pcap"
xfer mss-h1 mss-h2 198.18.2.20 22 1000
stop_capture mss-h2 eth0
m=$(syn_mss "$IT_TMP/mss-h2-noclamp.pcap" 22 0)
[[ $m == 1460 ]] || fail "$E: without the clamp, h1's SYN arrived with MSS '$m' (1460 expected)"
ok "$E: without the clamp, h1's SYN crosses enc0 (MTU $mtu_a) with MSS 1460"

for g in mss-a mss-b; do load_rules $g "$EX/$E/rules.nft"; done
capture mss-h2 eth0 "$IT_TMP/mss-h2.pcap"
capture mss-h1 eth0 "$IT_TMP/mss-h1.pcap"
capture mss-a wan "$IT_TMP/mss-wan.pcap"
on mss-h1 ping -c 2 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "$E: ping h1 -> h2"
xfer mss-h1 mss-h2 198.18.2.20 22 2000000
ok "$E: ping and TCP 2 MB h1 -> h2 (SSH port) through the AES-256-CBC/HMAC-SHA2-512 tunnel"
stop_capture mss-h1 eth0
stop_capture mss-h2 eth0
syn=$(syn_mss "$IT_TMP/mss-h2.pcap" 22 0); synack=$(syn_mss "$IT_TMP/mss-h1.pcap" 22 1)
[[ $syn == $((mtu_a - 40)) ]] || fail "$E: h1's SYN arrived at h2 with MSS '$syn' (enc0 MTU $mtu_a - 40 = $((mtu_a - 40)) expected)"
[[ $synack == $((mtu_b - 40)) ]] || fail "$E: h2's SYN-ACK arrived at h1 with MSS '$synack' ($((mtu_b - 40)) expected)"
ok "$E: with the clamp the SYN reaches h2 with MSS $syn and the SYN-ACK reaches h1 with MSS $synack (enc0 MTU $mtu_a less 40)"
icmp=$(tcpdump -n -r "$IT_TMP/mss-h1.pcap" 'icmp[icmptype] == 3 and icmp[icmpcode] == 4' 2>/dev/null | wc -l)
[[ $icmp -eq 0 ]] || fail "$E: h1 got $icmp 'fragmentation needed' although its SYN was clamped"
ok "$E: h1's 2 MB needed no path MTU discovery (no fragmentation needed reached h1)"
fa=$(rule_count mss-a inet mss_clamp forward 'maxseg size set rt mtu'); fb=$(rule_count mss-b inet mss_clamp forward 'maxseg size set rt mtu')
((fa >= 1 && fb >= 1)) || fail "$E: the forward clamp counters: A $fa, B $fb"
ok "$E: the forward clamp rules counted $fa SYN on A and $fb SYN-ACK on B"

# Connections the gateway itself opens through the tunnel (from 198.18.1.1, which the
# flow covers). h2 sends 1 MB to A over one: the postrouting clamp is to set the MSS of A's
# SYN, so that h2's segments fit enc0 without B's "fragmentation needed".
capture mss-h2 eth0 "$IT_TMP/mss-h2-local.pcap"
pull mss-a mss-h2 198.18.2.20 22 1000000 198.18.1.1
stop_capture mss-h2 eth0
ok "$E: TCP 1 MB h2 -> A over a connection A opened from 198.18.1.1, bytes intact"
oa=$(rule_count mss-a inet mss_clamp postrouting 'maxseg size set rt mtu')
m=$(syn_mss "$IT_TMP/mss-h2-local.pcap" 22 0)
icmp=$(tcpdump -n -r "$IT_TMP/mss-h2-local.pcap" 'icmp[icmptype] == 3 and icmp[icmpcode] == 4 and dst 198.18.2.20' 2>/dev/null | wc -l)
if ((oa >= 1)) && [[ $m == $((mtu_a - 40)) ]] && ((icmp == 0)); then
    ok "$E: A's own SYN clamped to MSS $m by the postrouting rule ($oa), no fragmentation needed to h2"
else
    defect "$E: the output rule (connections A itself opens) counted $oa packets; A's own SYN crossed enc0 with MSS $m, not $((mtu_a - 40)), and h2 got $icmp 'fragmentation needed' from B for its segments to A, i.e. TCP needed path MTU discovery (the output hook sees the interface of the route before encd's [X] reroutes the packet into enc0, so 'oifname \"enc0\"' never matches there; a postrouting chain sees enc0)"
fi
# A sends 1 MB to h2 over a connection it opens: its segments fit enc0, so the kernel
# never has to refuse one ("fragmentation needed" to itself: IcmpOutDestUnreachs on A
# stays), and encd protects the 1 MB as segments (enc0 hands encd TCP super-packets,
# which encd cuts at the connection's MSS: "packets out on enc0" counts the segments).
out_segments() { encd_stats "$1" | sed -nE 's/^[[:space:]]*([0-9]+) packets? out on enc0.*/\1/p' | head -1; }
unreach() { on "$1" nstat -az IcmpOutDestUnreachs | awk '/IcmpOutDestUnreachs/ { print $2 }'; }
s0=$(out_segments mss-a); u0=$(unreach mss-a)
xfer mss-a mss-h2 198.18.2.20 22 1000000 198.18.1.1
s1=$(out_segments mss-a); u1=$(unreach mss-a)
crossed=$((s1 - s0))
[[ $crossed -gt 700 ]] || fail "$E: A protected only $crossed packets for 1 MB of its own TCP"
[[ $u1 -eq $u0 ]] || fail "$E: A's kernel refused $((u1 - u0)) of its own segments as larger than enc0's MTU $mtu_a"
stop_capture mss-a wan
ok "$E: TCP 1 MB A -> h2 from 198.18.1.1: $crossed segments protected by encd, none refused as larger than enc0's MTU $mtu_a"
esp=$(wire_only "$IT_TMP/mss-wan.pcap" esp)
[[ $esp -gt 1000 ]] || fail "$E: only $esp ESP packets between the gateways"
ok "$E: between the gateways $esp ESP packets and no other IPv4"
done_with mss-a mss-b

if ((${#DEFECTS[@]})); then
    echo "FAIL: ${#DEFECTS[@]} example defect(s), in $((SECONDS - T0)) s:" >&2
    printf '  %s\n' "${DEFECTS[@]}" >&2
    exit 1
fi
ok "the four examples with traffic in $((SECONDS - T0)) s"
