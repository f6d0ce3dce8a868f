#!/usr/bin/env bash
# Renders the manual pages in man/ (mdoc, the one source) as Markdown in Docs/, for
# reading on the web and in a checkout:  man/encd.8 -> Docs/encd.8.md, and so on.
# The output is committed; edit the mdoc page and run this script.
#
#   scripts/gen-man-md.sh           rewrite Docs/<page>.md from man/<page>
#   scripts/gen-man-md.sh --check   exit 1 (naming the pages) if any is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mandoc >/dev/null || { echo "gen-man-md: mandoc is missing (apt-get install mandoc)" >&2; exit 2; }
check=0
[[ ${1:-} == --check ]] && check=1
stale=()
for page in man/*.[1-9]; do
    name=$(basename "$page")
    out="Docs/$name.md"
    new=$( { printf '<!-- Generated from man/%s by scripts/gen-man-md.sh: edit the mdoc page, not this file. -->\n\n' "$name"
             mandoc -Tmarkdown "$page"; } )
    if ((check)); then
        [[ -f $out && "$(cat "$out")" == "$new" ]] || stale+=("$out")
    else
        printf '%s\n' "$new" >"$out"
    fi
done
if ((${#stale[@]})); then
    echo "gen-man-md: out of date (run scripts/gen-man-md.sh): ${stale[*]}" >&2
    exit 1
fi
