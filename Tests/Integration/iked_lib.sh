# What the encd-iked interop tests share (sourced after lib.sh, `sites` and gw1's encd):
# charon in gw2 (strongSwan 5.9.8 with kernel-libipsec, as ../shared/bench/ss_start.sh:
# its own strongswan.conf in $CS, /run bind-mounted), encd-iked in gw1, and the checks.

CHARON=/usr/lib/ipsec/charon
[[ -x $CHARON ]] && command -v swanctl >/dev/null || { echo "skip: strongSwan's charon is not installed"; exit 0; }
IKED=${IKED:-$IT_ROOT/.build/debug/encd-iked}
IKECTL=${IKECTL:-$IT_ROOT/.build/debug/ikectl}
CS=$IT_TMP/charon; mkdir -p "$CS/run"
# encd-iked's extra arguments (-C for certificates).
IKED_ARGS=()

# strongswan_conf [SETTING...]: $CS/strongswan.conf with the plugins these tests use,
# charon's log in $CS/charon.log (ike, enc and cfg at level 2), and each SETTING as a
# line of the charon section.
strongswan_conf() {
    {
        echo "charon {"
        printf '  %s\n' "$@"
        cat <<EOF
  load_modular = no
  load = random nonce openssl aes sha2 hmac gcm kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici
  plugins { vici { socket = unix://$CS/run/charon.vici } }
  filelog { it { path = $CS/charon.log
                 default = 1
                 ike = 2
                 enc = 2
                 cfg = 2
                 flush_line = yes } }
  syslog { daemon { default = -1 } }
}
EOF
    } >"$CS/strongswan.conf"
}

# start_charon: charon with $CS/strongswan.conf, then swanctl --load-all of
# $CS/swanctl.conf (credentials from $CS/x509, x509ca, private).
start_charon() {
    : >"$CS/charon.log"
    rm -f "$CS/run/charon.vici"
    STRONGSWAN_CONF="$CS/strongswan.conf" ip netns exec "$IT_ID-gw2" sh -c "mount --bind '$CS/run' /run && exec $CHARON" \
        >>"$IT_TMP/charon.log" 2>&1 </dev/null &
    CHARON_PID=$!
    IT_PIDS+=("$CHARON_PID")
    for _ in $(seq 100); do [[ -S $CS/run/charon.vici ]] && break; sleep 0.1; done
    [[ -S $CS/run/charon.vici ]] || fail "charon did not start: $(tail -5 "$IT_TMP/charon.log")"
    swanctl --load-all --noprompt --file "$CS/swanctl.conf" >/dev/null || fail "swanctl --load-all: $(tail -5 "$IT_TMP/swanctl.log")"
}
stop_charon() { kill -TERM "$CHARON_PID"; for _ in $(seq 50); do kill -0 "$CHARON_PID" 2>/dev/null || return 0; sleep 0.1; done; fail "charon did not stop"; }
# swanctl reads /etc/strongswan.conf for its own plugins and names every absent one on stderr.
swanctl() { SWANCTL_DIR=$CS command swanctl "$@" --uri "unix://$CS/run/charon.vici" 2>>"$IT_TMP/swanctl.log"; }

start_iked() {
    : >"$IT_TMP/gw1-iked.log"
    ip netns exec "$IT_ID-gw1" "$IKED" -d -v -f "$IT_TMP/gw1-iked.conf" -S "$IT_TMP/gw1/run/encd.sock" \
        -s "$IT_TMP/gw1/run/iked.sock" "${IKED_ARGS[@]}" >>"$IT_TMP/gw1-iked.log" 2>&1 &
    IKED_PID=$!
    IT_PIDS+=("$IKED_PID")
    for _ in $(seq 50); do grep -q "require flows installed" "$IT_TMP/gw1-iked.log" && return 0; sleep 0.1; done
    fail "encd-iked did not start: $(tail -5 "$IT_TMP/gw1-iked.log")"
}
stop_iked() { kill -TERM "$IKED_PID"; for _ in $(seq 50); do kill -0 "$IKED_PID" 2>/dev/null || return 0; sleep 0.1; done; fail "encd-iked did not stop"; }
ctl() { on gw1 python3 "$(dirname "$0")/encd_ctl.py" "$IT_TMP/gw1/run/encd.sock" "$@"; }
encd_sas() { ctl '{"command":"show","what":"sa"}' "len(r.get('sas') or [])"; }
# The CHILD SA's SPIs as ikectl shows them: "IN OUT".
iked_spis() { on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | sed -nE 's/.*childsa spi in (0x[0-9a-f]+) out (0x[0-9a-f]+).*/\1 \2/p' | head -1; }
wire_spis() { tcpdump -n -r "$1" 'udp port 4500 and udp[8:4] != 0' 2>/dev/null | grep -o 'spi=0x[0-9a-f]*' | sort -u | tr '\n' ' '; }
wait_for() { local what=$1; shift; for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done; fail "$what"; }
has_child() { [[ -n $(iked_spis) ]]; }

# traffic LABEL: ping and TCP h1 -> h2 as ESP-in-UDP with ikectl's SPIs (those it
# showed before or after: short-lived CHILD SAs may rekey meanwhile).
traffic() {
    local in0 out0 in out spi
    read -r in0 out0 <<<"$(iked_spis)"
    capture gw1 wan "$IT_TMP/$1.pcap"
    on h1 ping -c 3 -i 0.2 -W 2 198.18.2.20 >/dev/null || fail "$1: ping h1 -> h2"
    tcp_transfer h1 h2 198.18.2.20 1000000
    stop_capture gw1 wan
    read -r in out <<<"$(iked_spis)"
    local seen; seen=$(wire_spis "$IT_TMP/$1.pcap")
    [[ -n $seen ]] || fail "$1: no ESP-in-UDP on the wire"
    for spi in $seen; do
        case " $in0 $out0 $in $out " in *" ${spi#spi=} "*) ;; *) fail "$1: ESP-in-UDP SPIs $seen, ikectl $in0 $out0 then $in $out" ;; esac
    done
    [[ -z $(tcpdump -n -r "$IT_TMP/$1.pcap" 'icmp or tcp' 2>/dev/null) ]] || fail "$1: cleartext on the wire"
    swanctl --list-sas | has "$(printf '%08x' $((out)))" || fail "$1: charon has no SA with SPI $out"
}
