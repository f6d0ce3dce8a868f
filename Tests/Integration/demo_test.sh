#!/usr/bin/env bash
# The README's demo, so that it cannot rot: scripts/demo.sh without its set-up (the
# test run has installed the packages and built encd), which fails if the tunnel, the
# NAT traversal, the counters on enc0 or the tools' output do not work.
exec "$(dirname "$0")/../../scripts/demo.sh" --no-setup
