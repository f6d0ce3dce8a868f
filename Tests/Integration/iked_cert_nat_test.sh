#!/usr/bin/env bash
# iked_cert_test with gw1 behind a NAT router (lib.sh's nat_sites): certificates
# against charon through masquerading, encd-iked initiating and charon initiating
# through the router's forwarded ports 500 and 4500.
exec bash "$(dirname "$0")/iked_cert_test.sh" nat
