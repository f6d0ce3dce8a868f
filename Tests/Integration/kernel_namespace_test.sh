#!/usr/bin/env bash
# The Kernel module's own real-kernel suite (KernelNamespaceTests), run inside a
# namespace by run-namespace-tests.sh; fails if any of its tests fails.
set -euo pipefail
out=$(bash "$(dirname "$0")/run-namespace-tests.sh" 2>&1) || { echo "$out" | tail -40; exit 1; }
echo "$out" | grep -E "Test run with" | tail -1
grep -qE "✔ Test run with [0-9]+ tests" <<<"$out" || { echo "$out" | tail -40; exit 1; }
