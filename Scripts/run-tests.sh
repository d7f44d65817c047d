#!/bin/sh
# Runs the whole suite as two serial streams side by side (make test): the suites whose time is
# mostly waiting on real timers (membership over an emulated WAN for two minutes, gossip key
# rotations, death detection, partitions), which use little CPU, beside everything else. Each
# stream runs one test at a time, in its own process: in one process, side by side, QEMU guests
# and simulations starve Swift's cooperative thread pool on a 2-core machine and turn timeouts
# into flakes. The waiting stream's output follows the main one's; either failing fails the run.
#
# Usage: Scripts/run-tests.sh [swift]   (after `swift build --build-tests`)
set -u
swift=${*:-swift}
cd "$(dirname "$0")/.."
tests="$($swift build --show-bin-path)/hostmeshPackageTests.xctest"
[ -x "$tests" ] || { echo "error: $tests is missing: run '$swift build --build-tests' first" >&2; exit 1; }

# Suites of Tests/ (type names) that spend at least two thirds of their time waiting (measured:
# wall time against the CPU time of the test process and its agents).
waiting='WANMembershipTests|GossipKeyringProcessTests|LabPartitionTests|RevocationProcessTests|MembershipProcessTests'

log=$(mktemp /tmp/hostmesh-waiting-tests.XXXXXX)
side=''
main=''
trap 'rm -f "$log"' EXIT
# Interrupted: stop both streams (a background job would ignore SIGINT) and fail.
trap 'kill $side $main 2>/dev/null; exit 130' INT TERM
"$tests" --testing-library swift-testing --no-parallel --filter "$waiting" >"$log" 2>&1 &
side=$!
"$tests" --testing-library swift-testing --no-parallel --skip "$waiting" &
main=$!
wait $main
main_status=$?
wait $side
side_status=$?
echo
echo "== the waiting suites ($waiting), run beside the others =="
cat "$log"
[ $main_status -eq 0 ] && [ $side_status -eq 0 ]
