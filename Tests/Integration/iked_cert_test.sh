#!/usr/bin/env bash
# encd-iked against strongSwan's charon 5.9.8 (kernel-libipsec) with X.509 certificates
# from one ECDSA P-256 CA (made here with openssl, FQDNs in subjectAltName), both
# roles, charon fragmenting at 600 bytes and encd-iked at 1280:
#   1. encd-iked (RSA-3072, any method) initiates to charon (ECDSA): RFC 7427 both
#      ways (sha256WithRSAEncryption, ecdsa-with-SHA256); CERTREQ answered with CERT
#   2. charon (RSA-3072, rsa_pss = yes) initiates to a passive encd-iked (ECDSA):
#      encd-iked verifies RSASSA-PSS
#   3. charon with signature_authentication = no (classic method 1, RSA with SHA-1)
#      and encd-iked with `ecdsa256` (RFC 4754 method 9)
#   4. charon with a certificate for gw2.example.org from another CA: refused, nothing
#      reaches encd
# Each: both sides report the IKE SA and CHILD SA, ping and 1 MB of TCP pass as
# ESP-in-UDP with the SPIs both report. Skipped (exit 0) when charon is not installed.
# With the argument `nat` (iked_cert_nat_test.sh), the same with gw1 behind lib.sh's
# NAT router (nat_sites: masquerade, and 500/4500 forwarded to gw1 for charon's
# initiation in 2).
source "$(dirname "$0")/lib.sh"

if [[ ${1:-} == nat ]]; then
    nat_sites
    GW1=192.0.2.2 GW2=203.0.113.2 GW1_SEEN=203.0.113.1
else
    sites
    GW1=192.0.2.1 GW2=192.0.2.2 GW1_SEEN=192.0.2.1
fi
echo "# the tunnel comes from encd-iked" >"$IT_TMP/gw1.conf"
start_encd gw1 "$IT_TMP/gw1.conf"
source "$(dirname "$0")/iked_lib.sh"

# --- the PKI: a CA, gw1 (RSA-3072 and ECDSA), gw2 (ECDSA and RSA-3072), a rogue CA
P=$IT_TMP/pki; mkdir -p "$P"
ca() {   # ca NAME CN
    openssl ecparam -name prime256v1 -genkey -noout -out "$P/$1.key"
    openssl req -new -x509 -key "$P/$1.key" -subj "/O=encd-it/CN=$2" -days 2 -sha256 \
        -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign -out "$P/$1.pem"
}
cert() {   # cert NAME CA KEYSPEC FQDN
    case $3 in
        rsa*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${3#rsa}" -out "$P/$1.key" 2>/dev/null ;;
        *) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/$1.key" ;;
    esac
    openssl req -new -key "$P/$1.key" -subj "/O=encd-it/CN=$4" -out "$P/$1.csr"
    printf 'basicConstraints=CA:false\nkeyUsage=digitalSignature\nsubjectAltName=DNS:%s\n' "$4" >"$P/$1.ext"
    openssl x509 -req -in "$P/$1.csr" -CA "$P/$2.pem" -CAkey "$P/$2.key" -CAcreateserial -days 2 -sha256 \
        -extfile "$P/$1.ext" -out "$P/$1.pem" 2>/dev/null || fail "openssl x509 $1"
}
ca ca "encd-it CA"
ca rogue-ca "encd-it rogue CA"
cert gw1-rsa ca rsa3072 gw1.example.org
cert gw1-ec ca ec gw1.example.org
cert gw2-ec ca ec gw2.example.org
cert gw2-rsa ca rsa3072 gw2.example.org
cert gw2-rogue rogue-ca ec gw2.example.org

# encd-iked's directory (-C): the CA, its certificate, its key (mode 600).
iked_pki() {   # iked_pki CERT
    rm -rf "$IT_TMP/gw1-pki"; mkdir -p "$IT_TMP/gw1-pki/ca" "$IT_TMP/gw1-pki/certs" "$IT_TMP/gw1-pki/private"
    cp "$P/ca.pem" "$IT_TMP/gw1-pki/ca/"
    cp "$P/$1.pem" "$IT_TMP/gw1-pki/certs/"
    install -m 600 "$P/$1.key" "$IT_TMP/gw1-pki/private/local.key"
}
IKED_ARGS=(-C "$IT_TMP/gw1-pki")
iked_conf() {   # iked_conf MODE [AUTH]
    cat >"$IT_TMP/gw1-iked.conf" <<CONF
ikev2 "charon" $1 esp from 198.18.1.0/24 to 198.18.2.0/24 local $GW1 peer $GW2 \\
    ikesa enc aes-256-gcm prf hmac-sha2-256 group curve25519 childsa enc aes-128-gcm \\
    srcid gw1.example.org dstid gw2.example.org ${2:-}
CONF
    chmod 600 "$IT_TMP/gw1-iked.conf"
}

# --- -n checks the certificate directory with the file
iked_pki gw1-rsa
iked_conf active
n() { "$IKED" -n -C "$IT_TMP/gw1-pki" -f "$IT_TMP/gw1-iked.conf" 2>&1; }
[[ $(n) == *"configuration OK"* ]] || fail "encd-iked -n -C with a good directory: $(n)"
chmod 644 "$IT_TMP/gw1-pki/private/local.key"
out=$(n) && fail "encd-iked -n accepted a private key others can read"
[[ $out == *"local.key: group or others may read the private key (chmod 600)"* ]] || fail "-n on a readable key: $out"
chmod 600 "$IT_TMP/gw1-pki/private/local.key"
sed -i 's/srcid gw1.example.org/srcid gw9.example.org/' "$IT_TMP/gw1-iked.conf"
out=$(n) && fail "encd-iked -n accepted a srcid no certificate names"
[[ $out == *"certs: no certificate with the key of private/local.key names srcid gw9.example.org (policy \"charon\")"* ]] || fail "-n on a srcid no certificate names: $out"
rm "$IT_TMP/gw1-pki/ca/ca.pem"
iked_conf active
out=$(n) && fail "encd-iked -n accepted certificates without a CA"
[[ $out == *"ca: no CA certificate"* ]] || fail "-n without a CA: $out"
ok "encd-iked -n -C: a good directory passes; a readable key, a srcid no certificate names and no CA are refused, each named"

# charon_conf CERT [OPTION...]: charon with CERT, trusting both CAs, options in strongswan.conf.
charon_conf() {
    local certname=$1; shift
    rm -rf "$CS/x509" "$CS/x509ca" "$CS/private"; mkdir -p "$CS/x509" "$CS/x509ca" "$CS/private"
    cp "$P/ca.pem" "$P/rogue-ca.pem" "$CS/x509ca/"
    cp "$P/$certname.pem" "$CS/x509/"
    install -m 600 "$P/$certname.key" "$CS/private/"
    strongswan_conf "fragment_size = 600" "$@"
    cat >"$CS/swanctl.conf" <<EOF
connections {
  s2s {
    version = 2
    local_addrs = $GW2
    remote_addrs = $GW1_SEEN
    proposals = aes256gcm16-prfsha256-x25519
    local { auth = pubkey
            certs = $certname.pem
            id = gw2.example.org }
    remote { auth = pubkey
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
EOF
}

# up LABEL: both sides report the SAs, traffic passes, encd-iked names the certificate.
up() {
    wait_for "$1: no CHILD SA at encd-iked: $(tail -3 "$IT_TMP/gw1-iked.log")" has_child
    swanctl --list-sas | has "s2s: #.*ESTABLISHED" || fail "$1: charon shows no ESTABLISHED IKE SA"
    swanctl --list-sas | has "net: #.*INSTALLED" || fail "$1: charon shows no INSTALLED CHILD SA"
    grep -q "established with gw2.example.org .*(certificate O=encd-it, CN=gw2.example.org)" "$IT_TMP/gw1-iked.log" \
        || fail "$1: encd-iked did not log the peer's certificate: $(grep established "$IT_TMP/gw1-iked.log" | tail -1)"
    if [[ $GW1 != "$GW1_SEEN" ]]; then
        grep -q "NAT detected (in front of us)" "$IT_TMP/gw1-iked.log" || fail "$1: encd-iked did not see the NAT in front of it"
    fi
    on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | has "^  certificate O=encd-it, CN=gw2.example.org$" \
        || fail "$1: ikectl does not show the peer's certificate: $(on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa)"
    traffic "$1"
}
charon_said() { grep -q "$1" "$CS/charon.log" || fail "$2: $(grep -E "authentication of|signature|cert req|entity cert" "$CS/charon.log" | head -8)"; }

# --- 1. encd-iked (RSA-3072) initiates to charon (ECDSA); RFC 7427 both ways
iked_pki gw1-rsa
iked_conf active
charon_conf gw2-ec
start_charon
start_iked
up rfc7427
charon_said "authentication of 'gw1.example.org' with RSA_EMSA_PKCS1_SHA2_256 successful" "charon did not verify RFC 7427 sha256WithRSAEncryption"
charon_said "authentication of 'gw2.example.org' (myself) with ECDSA_WITH_SHA256_DER successful" "charon did not sign with RFC 7427 ECDSA"
charon_said 'received cert request for "O=encd-it, CN=encd-it CA"' "charon got no CERTREQ for the CA"
charon_said 'received end entity cert "O=encd-it, CN=gw1.example.org"' "charon got no CERT from encd-iked"
charon_said "splitting IKE message" "charon did not fragment at 600 bytes"
grep -Eq "received fragment #[0-9]+ of [0-9]+" "$CS/charon.log" || fail "encd-iked's IKE_AUTH (RSA-3072 certificate and signature) was not fragmented"
ok "encd-iked (RSA-3072) -> charon (ECDSA): RFC 7427 sha256WithRSAEncryption and ecdsa-with-SHA256, CERTREQ/CERT, fragments both ways; CHILD SA $(iked_spis) carries ping and TCP"
stop_iked
wait_for "encd still has SAs after encd-iked's DELETE" test "$(encd_sas)" = 0
stop_charon

# --- 2. charon (RSA-3072, PSS) initiates to a passive encd-iked (ECDSA)
iked_pki gw1-ec
iked_conf passive
charon_conf gw2-rsa "rsa_pss = yes"
start_charon
start_iked
swanctl --initiate --child net --ike s2s --timeout 15 >"$IT_TMP/initiate.txt" 2>&1 || fail "charon's initiate: $(tail -5 "$IT_TMP/initiate.txt")"
up pss
charon_said "authentication of 'gw2.example.org' (myself) with RSA_EMSA_PSS_SHA2_256_SALT_32 successful" "charon did not sign with RSASSA-PSS"
on gw1 "$IKECTL" -s "$IT_TMP/gw1/run/iked.sock" show sa | has "responder ESTABLISHED" || fail "ikectl does not show a responder SA"
ok "charon (RSA-3072, rsa_pss = yes) -> encd-iked (ECDSA): encd-iked verified RSASSA-PSS as responder; CHILD SA $(iked_spis) carries ping and TCP"
stop_iked
stop_charon

# --- 3. classic methods: charon RSA method 1, encd-iked ecdsa256 (method 9)
iked_pki gw1-ec
iked_conf active ecdsa256
charon_conf gw2-rsa "signature_authentication = no"
start_charon
start_iked
up classic
charon_said "authentication of 'gw1.example.org' with ECDSA-256 signature successful" "charon did not verify RFC 4754 ECDSA-256"
charon_said "authentication of 'gw2.example.org' (myself) with RSA signature successful" "charon did not sign with method 1"
ok "classic methods: encd-iked ecdsa256 (RFC 4754 method 9), charon RSA (method 1); CHILD SA $(iked_spis) carries ping and TCP"
stop_iked
stop_charon

# --- 4. a certificate from another CA
iked_pki gw1-ec
iked_conf active
charon_conf gw2-rogue
start_charon
start_iked
wait_for "encd-iked did not refuse another CA's certificate: $(tail -3 "$IT_TMP/gw1-iked.log")" \
    grep -q "responder failed to authenticate as gw2.example.org" "$IT_TMP/gw1-iked.log"
grep "responder failed to authenticate" "$IT_TMP/gw1-iked.log" | grep -Eq "unable to get local issuer certificate|no certificate" \
    || fail "another CA: the refusal does not say why: $(grep "responder failed" "$IT_TMP/gw1-iked.log" | head -1)"
sleep 1
[[ $(encd_sas) == 0 ]] || fail "SAs in encd after a refused certificate"
has_child && fail "encd-iked has a CHILD SA with a peer it refused"
ok "a certificate for gw2.example.org from another CA: refused ($(grep -o 'responder failed.*' "$IT_TMP/gw1-iked.log" | head -1)), nothing in encd"
stop_iked
stop_charon
