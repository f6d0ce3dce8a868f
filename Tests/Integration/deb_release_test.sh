#!/usr/bin/env bash
# The release package as `make deb` builds it (about 1.5 minutes on a fresh 2-core
# machine, most of it the release build): its binaries load no Swift library (the
# runtime is linked statically, Debian has none), they run, and its Depends name the
# libraries they load. install_test.sh checks the file list and the maintainer scripts
# on a package of the debug build; Docs/packaging.md records `apt install` of this one
# on a fresh machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
TMP=$(mktemp -d /tmp/encd-deb-test.XXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$(scripts/build-deb.sh --out "$TMP" 2>"$TMP/build.log" | tail -1) || fail "make deb: $(tail -20 "$TMP/build.log")"
[[ -f $deb ]] || fail "build-deb printed no package: $(tail -5 "$TMP/build.log")"
echo "ok: $(basename "$deb"), $(stat -c %s "$deb") bytes"

dpkg-deb -x "$deb" "$TMP/x"
for b in encd encctl encstat; do
    ldd "$TMP/x/usr/sbin/$b" >"$TMP/ldd"
    grep -qiE 'libswift|libFoundation|libdispatch|libBlocksRuntime|/opt/swift' "$TMP/ldd" && fail "$b loads Swift's libraries: $(cat "$TMP/ldd")"
    grep -q "not found" "$TMP/ldd" && fail "$b: $(grep 'not found' "$TMP/ldd")"
done
echo "ok: encd, encctl, encstat load no Swift library"

# Run it as the target machine would: no Swift on PATH or in the loader's path.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$TMP/x/usr/sbin/encd" -n -f "$TMP/x/usr/share/encd/ipsec.conf.example" >"$TMP/n" 2>&1 \
    || fail "the packaged encd -n: $(cat "$TMP/n")"
echo "ok: the packaged encd runs: $(cat "$TMP/n")"

depends=$(dpkg-deb -f "$deb" Depends)
for dep in libc6 libssl3 libnftnl11 libmnl0 libnetfilter-queue1 nftables; do
    [[ ", $depends," == *", $dep,"* ]] || fail "Depends lacks $dep: $depends"
done
echo "ok: Depends: $depends"
