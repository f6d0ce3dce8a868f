#!/usr/bin/env bash
# `make install` puts every file where README.md ("Installing for real") says, with the
# right modes; it never replaces an existing /etc/encd/ipsec.conf; the installed example
# configuration passes `encd -n`; the installed unit passes `systemd-analyze verify`
# (its man: links resolve against the installed pages) and its exposure score is below
# 2.5; `make uninstall` removes it all. Then the Debian package of the same files:
# `dpkg-deb -I` (fields, Depends), `dpkg-deb -c` (the same list, PREFIX=/usr, pages
# gzipped), and a real install and purge into a scratch root with dpkg --root.
#
# Uses the debug build (BUILD=debug, built by scripts/test.sh): the release build and
# the release package are `make deb` (Docs/packaging.md records a run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
TMP=$(mktemp -d /tmp/encd-install-test.XXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
[[ -x .build/debug/encd ]] || fail "no debug build (swift build)"

unitdir=$(pkg-config systemd --variable=systemdsystemunitdir 2>/dev/null || echo /lib/systemd/system)

# The README's list: first word of each line of the code block after the marker.
readme_list() {   # PREFIX UNITDIR
    awk '/<!-- installed files -->/ {on=1; next} on && /^```/ {n++; if (n == 2) exit; next} on && n == 1 {print $1}' README.md \
        | sed -e "s|\$PREFIX|$1|g" -e "s|\$SYSTEMDUNITDIR|$2|g"
}
readme_list /usr/local "$unitdir" >"$TMP/readme.list"
[[ $(wc -l <"$TMP/readme.list") -ge 10 ]] || fail "README.md has no list of installed files after <!-- installed files -->"

D=$TMP/destdir
make -s install BUILD=debug DESTDIR="$D" >"$TMP/make.log" 2>&1 || fail "make install: $(tail -5 "$TMP/make.log")"
(cd "$D" && find . -type f -printf '/%P\n' | sort) >"$TMP/installed.list"

# Every README line names at least one installed file, and every installed file is
# named by a README line (lines may be glob patterns).
while read -r pattern; do
    compgen -G "$D$pattern" >/dev/null || fail "README lists $pattern; make install did not put it there"
done <"$TMP/readme.list"
while read -r file; do
    matched=0
    while read -r pattern; do [[ $file == $pattern ]] && { matched=1; break; }; done <"$TMP/readme.list"
    ((matched)) || fail "make install put $file, which README.md does not list"
done <"$TMP/installed.list"
ok "make install DESTDIR: $(wc -l <"$TMP/installed.list") files, each where README.md says"

mode() { stat -c %a "$1"; }
for p in encd encctl encstat encd-iked ikectl; do [[ $(mode "$D/usr/local/sbin/$p") == 755 ]] || fail "$p is not mode 0755"; done
[[ $(mode "$D/etc/encd/ipsec.conf") == 600 ]] || fail "/etc/encd/ipsec.conf is mode $(mode "$D/etc/encd/ipsec.conf"), want 0600"
[[ $(mode "$D/etc/encd") == 700 ]] || fail "/etc/encd is mode $(mode "$D/etc/encd"), want 0700"
[[ -d $D/etc/encd/iked/ca && -d $D/etc/encd/iked/certs && -d $D/etc/encd/iked/crls && $(mode "$D/etc/encd/iked/private") == 700 ]] \
    || fail "no /etc/encd/iked/{ca,certs,crls} and private (0700) for encd-iked's certificates"
grep -q "^ExecStart=/usr/local/sbin/encd " "$D$unitdir/encd.service" || fail "the unit does not start /usr/local/sbin/encd"
ok "modes: binaries 0755, /etc/encd 0700, ipsec.conf 0600; the unit runs \$PREFIX/sbin/encd"

"$D/usr/local/sbin/encd" -n -f "$D/etc/encd/ipsec.conf" >"$TMP/n.log" 2>&1 || fail "the installed ipsec.conf: $(cat "$TMP/n.log")"
ok "the installed example configuration passes encd -n: $(tail -1 "$TMP/n.log")"
install -m 0600 "$D/usr/local/share/encd/iked.conf.example" "$TMP/iked.conf"
"$D/usr/local/sbin/encd-iked" -n -f "$TMP/iked.conf" >"$TMP/n.log" 2>&1 || fail "the installed iked.conf example: $(cat "$TMP/n.log")"
ok "the installed iked.conf example passes encd-iked -n"

echo "# mine" >>"$D/etc/encd/ipsec.conf"
make -s install BUILD=debug DESTDIR="$D" >"$TMP/make.log" 2>&1 || fail "second make install: $(tail -5 "$TMP/make.log")"
[[ $(tail -1 "$D/etc/encd/ipsec.conf") == *"# mine"* ]] || fail "make install replaced an existing /etc/encd/ipsec.conf"
ok "make install keeps an existing /etc/encd/ipsec.conf"

MANPATH="$D/usr/local/share/man" man -w encd >/dev/null 2>&1 || fail "man does not find the installed encd(8)"
for page in encd encctl encstat ipsec.conf enc encd-iked ikectl iked.conf; do
    # (captured first: under pipefail, grep -q quitting early can kill man with SIGPIPE)
    text=$(MANPATH="$D/usr/local/share/man" man "$page" 2>&1) || true
    grep -q "^NAME" <<<"$text" || fail "man $page does not render from the installed tree"
done
ok "man finds and renders the eight installed pages"

# The unit, with the binaries' path pointing into DESTDIR so that verify can check it.
sed "s|/usr/local/sbin/encd|$D/usr/local/sbin/encd|g" "$D$unitdir/encd.service" >"$TMP/encd.service"
MANPATH="$D/usr/local/share/man" systemd-analyze verify "$TMP/encd.service" >"$TMP/verify.log" 2>&1 \
    || fail "systemd-analyze verify: $(cat "$TMP/verify.log")"
[[ -s $TMP/verify.log ]] && fail "systemd-analyze verify warns: $(cat "$TMP/verify.log")"
ok "systemd-analyze verify passes on the installed unit"
score=$(systemd-analyze security --offline=yes "$TMP/encd.service" 2>/dev/null | sed -nE 's/.*Overall exposure level for encd.service: ([0-9.]+).*/\1/p')
[[ -n $score ]] || fail "systemd-analyze security printed no exposure level"
awk -v s="$score" 'BEGIN {exit !(s < 2.5)}' || fail "exposure level $score, want below 2.5"
ok "systemd-analyze security --offline=yes: exposure $score (below 2.5)"
# encd-iked's unit names encd.service: verify both together.
sed "s|/usr/local/sbin/encd-iked|$D/usr/local/sbin/encd-iked|g" "$D$unitdir/encd-iked.service" >"$TMP/encd-iked.service"
MANPATH="$D/usr/local/share/man" systemd-analyze verify "$TMP/encd.service" "$TMP/encd-iked.service" >"$TMP/verify.log" 2>&1 \
    || fail "systemd-analyze verify encd-iked.service: $(cat "$TMP/verify.log")"
[[ -s $TMP/verify.log ]] && fail "systemd-analyze verify warns on encd-iked.service: $(cat "$TMP/verify.log")"
iscore=$(systemd-analyze security --offline=yes "$TMP/encd-iked.service" 2>/dev/null | sed -nE 's/.*Overall exposure level for encd-iked.service: ([0-9.]+).*/\1/p')
awk -v s="${iscore:-10}" 'BEGIN {exit !(s < 2.5)}' || fail "encd-iked.service exposure level ${iscore:-?}, want below 2.5"
ok "encd-iked.service: systemd-analyze verify passes, exposure $iscore (below 2.5)"

make -s uninstall DESTDIR="$D" >"$TMP/make.log" 2>&1 || fail "make uninstall: $(tail -5 "$TMP/make.log")"
left=$(cd "$D" && find . -type f -printf '/%P\n')
[[ $left == /etc/encd/ipsec.conf ]] || fail "make uninstall left: ${left:-nothing, but the changed ipsec.conf must stay}"
ok "make uninstall removes everything but the administrator's changed ipsec.conf"

# The Debian package, from the same debug binaries.
deb=$(BUILD=debug scripts/build-deb.sh --no-build --out "$TMP/deb" 2>"$TMP/deb.log") || fail "build-deb: $(cat "$TMP/deb.log")"
version=$(cat VERSION)
[[ $(basename "$deb") == "encd_${version}_$(dpkg --print-architecture).deb" ]] || fail "package named $(basename "$deb")"
dpkg-deb -I "$deb" >"$TMP/info"
for field in "Package: encd" "Version: $version" "Architecture: $(dpkg --print-architecture)"; do
    grep -q "^ $field$" "$TMP/info" || fail "dpkg-deb -I lacks '$field'"
done
depends=$(sed -n 's/^ Depends: //p' "$TMP/info")
for dep in libc6 libssl3 libnftnl11 libmnl0 libnetfilter-queue1 nftables; do
    [[ ", $depends," == *", $dep,"* ]] || fail "Depends lacks $dep: $depends"
done
for s in postinst prerm postrm; do grep -qE "lines +\* +$s " "$TMP/info" || fail "the package has no $s"; done
ok "dpkg-deb -I: encd $version, Depends: $depends"

readme_list /usr /lib/systemd/system | sed -E 's|^(/usr/share/man/man[0-9]/.*)$|\1.gz|' | grep -vx /etc/encd/ipsec.conf >"$TMP/deb.expected"
dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {sub(/^\./, "", $6); print $6}' | sort >"$TMP/deb.list"
while read -r pattern; do
    grep -q . <(while read -r f; do [[ $f == $pattern ]] && echo "$f"; done <"$TMP/deb.list") \
        || fail "the package lacks $pattern"
done <"$TMP/deb.expected"
while read -r file; do
    matched=0
    while read -r pattern; do [[ $file == $pattern ]] && { matched=1; break; }; done <"$TMP/deb.expected"
    ((matched)) || fail "the package holds $file, which README.md does not list"
done <"$TMP/deb.list"
ok "dpkg-deb -c: $(wc -l <"$TMP/deb.list") files, the README's list with PREFIX=/usr"

# Install and purge for real, into a scratch root (maintainer scripts honour DPKG_ROOT).
R=$TMP/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" && touch "$R/var/lib/dpkg/status"
dpkgr() { dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-depends --force-not-root "$@"; }
dpkgr -i "$deb" >"$TMP/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$TMP/dpkg.log")"
[[ -x $R/usr/sbin/encd && -f $R/lib/systemd/system/encd.service && -f $R/usr/share/man/man8/encd.8.gz ]] || fail "dpkg -i put the files elsewhere"
[[ $(mode "$R/etc/encd/ipsec.conf") == 600 ]] || fail "postinst: /etc/encd/ipsec.conf missing or not 0600"
[[ -d $R/var/lib/encd && $(mode "$R/var/lib/encd") == 700 ]] || fail "postinst: no /var/lib/encd (0700)"
[[ -d $R/etc/encd/iked/certs && $(mode "$R/etc/encd/iked/private") == 700 ]] || fail "postinst: no /etc/encd/iked/certs and private (0700)"
echo "# kept" >>"$R/etc/encd/ipsec.conf"
dpkgr -i "$deb" >"$TMP/dpkg.log" 2>&1 || fail "dpkg -i again: $(cat "$TMP/dpkg.log")"
grep -q "# kept" "$R/etc/encd/ipsec.conf" || fail "reinstalling replaced /etc/encd/ipsec.conf"
dpkgr --purge encd >"$TMP/dpkg.log" 2>&1 || fail "dpkg --purge: $(cat "$TMP/dpkg.log")"
left=$(cd "$R" && find . -path ./var/lib/dpkg -prune -o -type f -printf '/%P\n')
[[ -z $left && ! -e $R/var/lib/encd && ! -e $R/etc/encd ]] || fail "purge left: $left $(ls -d "$R"/var/lib/encd "$R"/etc/encd 2>/dev/null)"
ok "dpkg --root: install (ipsec.conf 0600, /var/lib/encd), reinstall keeps ipsec.conf, purge leaves nothing"
