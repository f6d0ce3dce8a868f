#!/usr/bin/env bash
# The example rulesets an administrator starts from (Rules/examples/<name>/): each
# rules.nft loads with `nft -c -f` in a scratch network namespace, and each ipsec.conf
# (and peer.conf) passes `encd -n -f`, with its keys made by the "# keys:" commands of
# its own header, in a private copy of mode 0600. The nat-traversal example also runs
# with traffic in scripts/demo.sh (Tests/Integration/demo_test.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ENCD=${ENCD:-$ROOT/.build/debug/encd}
NS="encd-it-$$-rules"
TMP=$(mktemp -d "/tmp/encd-it-$$-rules.XXXX")
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -x $ENCD ]] || fail "no encd at $ENCD (swift build)"

ip netns add "$NS"
ip -n "$NS" link set lo up

examples=("$ROOT"/Rules/examples/*/)
[[ ${#examples[@]} -ge 5 ]] || fail "expected at least 5 examples, found ${#examples[@]}"
for dir in "${examples[@]}"; do
    name=$(basename "$dir")
    for f in rules.nft ipsec.conf README; do [[ -f $dir/$f ]] || fail "$name has no $f"; done
    grep -qw queue "$dir/rules.nft" && fail "$name/rules.nft uses queue (encd's own table does that)"
    ip netns exec "$NS" nft -c -f "$dir/rules.nft" 2>"$TMP/nft.err" || fail "$name/rules.nft: $(cat "$TMP/nft.err")"
    echo "ok: $name/rules.nft passes nft -c"

    copy="$TMP/$name"
    mkdir -m 0700 "$copy" "$copy/keys"
    for conf in "$dir"*.conf; do
        install -m 0600 "$conf" "$copy/"
        # The header's key commands, run as an administrator would (umask 077).
        sed -n 's/^# keys: //p' "$conf" | (cd "$copy" && umask 077 && bash -e) || fail "$name: the # keys: commands of $(basename "$conf") fail"
        "$ENCD" -n -f "$copy/$(basename "$conf")" >"$TMP/encd.out" 2>&1 || fail "$name/$(basename "$conf"): $(cat "$TMP/encd.out")"
        echo "ok: $name/$(basename "$conf") passes encd -n ($(tail -1 "$TMP/encd.out" | sed 's/.*(//; s/).*//'))"
    done
done
