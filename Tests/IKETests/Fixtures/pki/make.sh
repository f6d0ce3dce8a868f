#!/usr/bin/env bash
# Regenerates the X.509 fixtures of CertificateTests (run here; the committed files
# are what the tests use). Valid for 100 years from when they were made. Names:
#   ca        ECDSA P-256 root "encd test CA"
#   inter     ECDSA P-256 intermediate CA under ca
#   gw1-rsa   RSA-2048 under ca: gw1.example.org, 192.0.2.1, gw1@example.org
#   gw2-ec    ECDSA P-256 under ca: gw2.example.org, 192.0.2.2
#   gw3-p384  ECDSA P-384 under inter: gw3.example.org
#   revoked   ECDSA P-256 under ca: revoked.example.org, revoked by crl.pem
#   rogue-ca  another ECDSA P-256 root; rogue: gw2.example.org under it
set -euo pipefail
cd "$(dirname "$0")"
days=36500
ca_ext=$(mktemp); leaf_ext=$(mktemp); trap 'rm -f "$ca_ext" "$leaf_ext" *.csr *.srl index.txt* crlnumber* openssl-ca.cnf' EXIT
printf 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >"$ca_ext"
root() {   # root NAME CN
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -x509 -key "$1.key" -subj "/O=encd/CN=$2" -days $days -sha256 \
        -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign -out "$1.pem"
}
leaf() {   # leaf NAME ISSUER KEYSPEC SAN [CA]
    case $3 in
        rsa*) openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${3#rsa}" -out "$1.key" 2>/dev/null ;;
        *) openssl ecparam -name "$3" -genkey -noout -out "$1.key" ;;
    esac
    openssl req -new -key "$1.key" -subj "/O=encd/CN=$1" -out "$1.csr"
    if [[ ${5:-} == ca ]]; then cp "$ca_ext" "$leaf_ext"; else
        printf 'basicConstraints=CA:false\nkeyUsage=digitalSignature\nsubjectAltName=%s\nauthorityKeyIdentifier=keyid\n' "$4" >"$leaf_ext"; fi
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days $days -sha256 -extfile "$leaf_ext" -out "$1.pem" 2>/dev/null
}
root ca "encd test CA"
leaf inter ca prime256v1 "" ca
leaf gw1-rsa ca rsa2048 "DNS:gw1.example.org,IP:192.0.2.1,email:gw1@example.org"
leaf gw2-ec ca prime256v1 "DNS:gw2.example.org,IP:192.0.2.2"
leaf gw3-p384 inter secp384r1 "DNS:gw3.example.org"
leaf revoked ca prime256v1 "DNS:revoked.example.org"
root rogue-ca "encd rogue CA"
leaf rogue rogue-ca prime256v1 "DNS:gw2.example.org"
# A CRL of ca that revokes "revoked".
: >index.txt; echo 01 >crlnumber
cat >openssl-ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = index.txt
crlnumber = crlnumber
default_md = sha256
default_crl_days = $days
CNF
openssl ca -config openssl-ca.cnf -keyfile ca.key -cert ca.pem -revoke revoked.pem 2>/dev/null
openssl ca -config openssl-ca.cnf -keyfile ca.key -cert ca.pem -gencrl -out crl.pem 2>/dev/null
chmod 600 *.key
