#!/usr/bin/env bash
# Every test encd has: unit tests (swift test), then the integration tests on the real
# kernel in network namespaces (root), then the unit tests under AddressSanitizer and
# ThreadSanitizer and a short run of every fuzz target (scripts/sanitizers.sh,
# scripts/fuzz.sh; set ENCD_QUICK=1 to skip those two). Installs its own packages
# first. The last line is "N passed, N failed" over the whole run.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
./scripts/install-deps.sh || { echo "install-deps failed"; exit 1; }

passed=0; failed=0
log=$(mktemp)
echo "== swift build"
if ! swift build >"$log" 2>&1; then
    grep -E 'error:' "$log" | sort -u | head -40; tail -20 "$log"; echo "swift build failed"; exit 1
fi
tail -3 "$log"
echo "== swift test"
swift test 2>&1 | tee "$log" | grep -E '^(✘|✔ Test run|✘ Test run)|error:|Fatal' || true
# Swift Testing's summary: "Test run with N tests in M suites passed/failed after ..."
summary=$(grep -E 'Test run with [0-9]+ tests?' "$log" | tail -1)
total=$(sed -nE 's/.*Test run with ([0-9]+) tests?.*/\1/p' <<<"$summary")
nfail=$(grep -cE '^✘ Test [a-zA-Z_(]' "$log" || true)
if [[ -z "$total" ]]; then echo "swift test did not finish"; failed=$((failed + 1)); else
    passed=$((passed + total - nfail)); failed=$((failed + nfail)); fi

echo "== integration tests (network namespaces)"
if [[ $(id -u) -ne 0 ]]; then
    echo "integration tests need root: skipped"
else
    for t in Tests/Integration/*_test.sh; do
        [[ -e "$t" ]] || continue
        name=$(basename "$t" .sh)
        if timeout 600 bash "$t" >"$log.it" 2>&1; then
            echo "PASS $name"; passed=$((passed + 1))
        else
            # The reason first (the tail below is mostly the daemons' logs), then the tail.
            echo "FAIL $name"; grep -E '^(FAIL|DEFECT)' "$log.it" | head -5 | sed 's/^/  > /'
            sed 's/^/    /' "$log.it" | tail -40; failed=$((failed + 1))
        fi
    done
fi
if [[ -z ${ENCD_QUICK:-} ]]; then
    echo "== sanitizers (unit tests under ASan and TSan)"
    while read -r line; do
        echo "$line"
        case $line in address:*passed*|thread:*passed*) passed=$((passed + 1)) ;; address:*|thread:*) failed=$((failed + 1)) ;; esac
    done < <(./scripts/sanitizers.sh address thread 2>&1)
    echo "== fuzzing (20 s per target; crash inputs kept in Fuzz/Crashes)"
    while read -r line; do
        echo "$line"
        case $line in Fuzz*": "*"no crash") passed=$((passed + 1)) ;; Fuzz*) failed=$((failed + 1)) ;; "fuzz build failed") failed=$((failed + 1)) ;; esac
    done < <(./scripts/fuzz.sh 20 2>&1)
fi
rm -f "$log" "$log.it"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
