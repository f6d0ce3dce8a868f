#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (AddressSanitizer on) and runs each for a
# bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]  (default 60 s, all).
# Seeds (in git) are in Fuzz/Seeds/<target>; the corpus grows in Fuzz/Corpus/<target>
# (not in git); crashes land in Fuzz/Crashes/<target>, where they stay as regression
# inputs: every run first replays them and fails if one still crashes.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-60}; shift || true
targets=("$@"); [[ ${#targets[@]} -gt 0 ]] || targets=(FuzzInbound FuzzQueue FuzzConfig FuzzControl FuzzIKE FuzzIKEEngine)
echo "== building the fuzz targets (release, AddressSanitizer, libFuzzer's coverage)"
# SwiftPM gives each executable its own main, so -sanitize=fuzzer (which links
# libFuzzer's main) cannot be used: the coverage libFuzzer reads is asked for by name,
# libFuzzer is linked without its main, and the targets start its loop themselves
# (Fuzz/Sources/FuzzDriver).
rt=$(cd "$(dirname "$(command -v swift)")/../lib/clang" && ls -d "$PWD"/*/lib/linux | head -1)
# SwiftPM keeps the plan of the encd package (a path dependency here) in this build
# description and does not notice a source file added to it: without the plan, a
# kept .build-fuzz fails with "cannot find ... in scope". Planning again is cheap.
rm -f .build-fuzz/release.yaml
if ! swift build --package-path Fuzz --scratch-path .build-fuzz -c release \
        -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
        -Xlinker "$rt/libclang_rt.fuzzer_no_main-x86_64.a" -Xlinker -lstdc++ >/tmp/encd-fuzz-build.log 2>&1; then
    grep -E "error:" /tmp/encd-fuzz-build.log | sort -u | head -20; echo "fuzz build failed"; exit 1
fi
bin=.build-fuzz/release
status=0
for t in "${targets[@]}"; do
    corpus=Fuzz/Corpus/$t; crashes=Fuzz/Crashes/$t
    mkdir -p "$corpus" "$crashes"
    cp -n Fuzz/Seeds/$t/* "$corpus"/ 2>/dev/null || true     # hand-made seeds (in git); the corpus grows beside them
    # Known crash inputs first: each must now pass.
    for c in "$crashes"/*; do
        [[ -e $c ]] || continue
        SWIFT_BACKTRACE=enable=no "$bin/$t" "$c" >/dev/null 2>&1 || { echo "$t: regression input $c still crashes"; status=1; }
    done
    log=/tmp/encd-fuzz-$t.log
    # Swift's backtracer off: a trap then reaches libFuzzer's handler (stack and input
    # saved) instead of the backtracer, which ASan stops inside its memory reader.
    SWIFT_BACKTRACE=enable=no "$bin/$t" "$corpus" -max_total_time="$seconds" -artifact_prefix="$crashes/" -print_final_stats=1 \
        -rss_limit_mb=4096 -timeout=10 >"$log" 2>&1
    rc=$?
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [[ $rc -ne 0 ]]; then
        echo "$t: CRASH after ${runs:-?} runs ($cov); input in $crashes/:"
        grep -E "ERROR|Fatal error|SUMMARY|deadly signal" "$log" | head -5
        grep -E "^ +#[0-9]+ 0x" "$log" | head -12         # the top of the stack: where it trapped
        for a in "$crashes"/crash-* "$crashes"/leak-* "$crashes"/timeout-* "$crashes"/oom-*; do   # the input itself, to replay it elsewhere
            [[ -e $a ]] && echo "$(basename "$a") base64: $(head -c 3000 "$a" | base64 -w0)"
        done
        status=1
    else
        echo "$t: ${seconds}s, ${runs:-?} runs, $cov, corpus $(ls "$corpus" | wc -l) inputs, no crash"
    fi
done
exit $status
