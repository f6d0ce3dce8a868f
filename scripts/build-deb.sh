#!/usr/bin/env bash
# Builds the Debian package encd_VERSION_ARCH.deb with dpkg-deb (no debhelper):
#   make (release, Swift runtime linked statically: Debian has no Swift runtime),
#   make install into a staging root with PREFIX=/usr, binaries stripped, manual pages
#   gzipped, Depends: the Debian packages of every shared library the binaries load
#   (found with ldd and dpkg -S) plus nftables. Maintainer scripts: packaging/debian.
#
#   scripts/build-deb.sh                 build, then package into ./
#   scripts/build-deb.sh --no-build      package what .build/release holds
#   BUILD=debug scripts/build-deb.sh --no-build --out DIR
#       a test package of the debug binaries (they load Swift's own libraries from
#       /opt/swift: never for another machine); Tests/Integration/install_test.sh
#
# Prints the package's path. Install with: apt install ./encd_VERSION_ARCH.deb
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
BUILD=${BUILD:-release}
build=1; out=$PWD
while (($#)); do
    case $1 in
    --no-build) build=0 ;;
    --out) out=$2; shift ;;
    *) echo "usage: scripts/build-deb.sh [--no-build] [--out DIR]" >&2; exit 64 ;;
    esac
    shift
done
version=$(cat VERSION)
arch=$(dpkg --print-architecture)
work=$(mktemp -d "${TMPDIR:-/tmp}/encd-deb.XXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/root

((build)) && make build BUILD="$BUILD"
make -s install BUILD="$BUILD" DESTDIR="$stage" PREFIX=/usr SYSTEMDUNITDIR=/lib/systemd/system >/dev/null
# postinst installs /etc/encd/ipsec.conf from the example when there is none, so an
# administrator's file is never replaced and dpkg never asks about it.
rm -f "$stage/etc/encd/ipsec.conf"
[[ $BUILD == release ]] && strip --strip-unneeded "$stage"/usr/sbin/*
gzip -9n "$stage"/usr/share/man/man*/*

# Depends: the package of each library the binaries load. A library no package owns
# (libswiftCore.so, libFoundation.so) would not exist on the target: refuse.
libs=$(for b in "$stage"/usr/sbin/*; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
pkgs=(nftables); unowned=()
for lib in $libs; do
    real=$(readlink -f "$lib")
    owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || true)
    if [[ -n $owner ]]; then pkgs+=("${owner%%:*}"); else unowned+=("$lib"); fi
done
if ((${#unowned[@]})); then
    if [[ $BUILD == release ]]; then
        echo "build-deb: no Debian package provides ${unowned[*]} (link the Swift runtime statically)" >&2
        exit 1
    fi
    echo "build-deb: test package: ${#unowned[@]} libraries from outside Debian (debug build)" >&2
fi
depends=$(printf '%s\n' "${pkgs[@]}" | sort -u | paste -sd, | sed 's/,/, /g')

mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    packaging/debian/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/encd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
