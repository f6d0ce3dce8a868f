#!/usr/bin/env bash
# The unit tests under AddressSanitizer and ThreadSanitizer (the data path is
# multi-threaded: workers, the reserver, the control thread; DaemonTests'
# ConcurrencyTests runs them together). Each sanitizer builds in its own folder.
#   scripts/sanitizers.sh [address|thread ...]   (default: both)
# Prints one line per sanitizer: "<name>: N tests passed" or the failures and reports.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH=/opt/swift/usr/bin:$PATH
kinds=("$@"); [[ ${#kinds[@]} -gt 0 ]] || kinds=(address thread)
status=0
for k in "${kinds[@]}"; do
    log=/tmp/encd-sanitize-$k.log
    # AllocationTests count malloc calls through their own interposer, which a
    # sanitizer's allocator replaces: they run without sanitizers in scripts/test.sh.
    if ! swift build --build-tests --scratch-path ".build-$k" -Xswiftc -sanitize="$k" -Xcc -DENCD_NO_ALLOC_COUNTER >"$log" 2>&1; then
        grep -E "error:" "$log" | sort -u | head -10; echo "$k: build failed"; status=1; continue
    fi
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ASAN_OPTIONS="detect_leaks=0" \
        swift test --skip-build --scratch-path ".build-$k" --skip AllocationTests >"$log" 2>&1
    rc=$?
    summary=$(grep -E "Test run with [0-9]+ tests" "$log" | tail -1)
    if [[ $rc -ne 0 ]] || grep -qE "WARNING: ThreadSanitizer|ERROR: AddressSanitizer" "$log"; then
        echo "$k: FAILED ($summary)"
        grep -E -A12 "WARNING: ThreadSanitizer|ERROR: AddressSanitizer" "$log" | head -40
        grep -E "^✘ Test " "$log" | head -10
        status=1
    else
        echo "$k: ${summary#✔ }"
    fi
done
exit $status
