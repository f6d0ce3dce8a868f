#!/usr/bin/env bash
# The manual pages in man/ are clean under `mandoc -Tlint` and `man --warnings`, and the
# Markdown copies in Docs/ are what scripts/gen-man-md.sh makes of them.
#
# mandoc checks each .Xr against the manuals installed in its base directories
# (/usr/share/man), not MANPATH. So the lint runs in a private mount namespace
# (unshare -m) where an overlay adds encd's pages to /usr/share/man; nothing outside
# that namespace changes. Lines about the system's own mandoc.db being out of date say
# nothing about these pages and are left out.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in mandoc man unshare; do command -v $tool >/dev/null || fail "$tool is missing (scripts/install-deps.sh)"; done
TMP=$(mktemp -d /tmp/encd-manpages.XXXX)
trap 'rm -rf "$TMP"' EXIT

pages=(man/*.[1-9])
[[ ${#pages[@]} -ge 5 ]] || fail "expected at least 5 pages in man/, found ${#pages[@]}"
for p in "${pages[@]}"; do
    s=${p##*.}; mkdir -p "$TMP/man/man$s"; cp "$p" "$TMP/man/man$s/"
done

unshare -m sh -c 'mount -t overlay overlay -o "lowerdir=$1:/usr/share/man" /usr/share/man && shift && mandoc -Tlint "$@"' \
    sh "$TMP/man" "${pages[@]}" >"$TMP/lint" 2>&1 || true
grep -v 'outdated mandoc.db lacks' "$TMP/lint" >"$TMP/lint.pages" || true
if [[ -s $TMP/lint.pages ]]; then cat "$TMP/lint.pages"; fail "mandoc -Tlint reports the lines above"; fi
echo "ok: mandoc -Tlint is silent on ${pages[*]}"

for p in "${pages[@]}"; do
    MANWIDTH=80 man --warnings -l "$p" >"$TMP/out" 2>"$TMP/err" || fail "man -l $p failed: $(cat "$TMP/err")"
    [[ -s $TMP/err ]] && { cat "$TMP/err"; fail "man --warnings -l $p warns"; }
    name=$(basename "$p"); name=${name%.*}
    grep -q "^NAME" "$TMP/out" && grep -qi "^ *$name" "$TMP/out" || fail "man -l $p renders no NAME section"
done
echo "ok: man --warnings -l renders every page without a warning"

scripts/gen-man-md.sh --check || fail "Docs/*.md are not what scripts/gen-man-md.sh makes of man/"
echo "ok: Docs/*.{4,5,8}.md are generated from man/"
