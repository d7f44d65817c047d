#!/bin/sh
# Runs the whole suite (make test) as three serial streams side by side, each in its own
# process and each one test at a time:
# - the suites whose time is mostly waiting on real timers (membership over an emulated WAN for
#   two minutes, gossip key rotations, death detection, partitions), which use little CPU;
# - the largest suites of real migrations (the fault matrices, the end-to-end migrations, the
#   long-distance ones): a serial stream of QEMU guests leaves about half of the two cores idle
#   (vmstat: 45% idle across the fault matrix), so two such streams share the machine;
# - everything else.
# Not one process running tests side by side: there, QEMU guests and simulations starve Swift's
# cooperative thread pool on a 2-core machine and turn timeouts into flakes. The side streams'
# output follows the main one's; any stream failing fails the run.
#
# Usage: Scripts/run-tests.sh [swift]   (after `swift build --build-tests`)
set -u
swift=${*:-swift}
cd "$(dirname "$0")/.."
tests="$($swift build --show-bin-path)/hostmeshPackageTests.xctest"
[ -x "$tests" ] || { echo "error: $tests is missing: run '$swift build --build-tests' first" >&2; exit 1; }

# Suites of Tests/ (type names; each is a regular expression matched against test ids) that
# spend at least two thirds of their time waiting (measured: wall time against the CPU time of
# the test process and its agents).
waiting='WANMembershipTests|GossipKeyringProcessTests|LabPartitionTests|RevocationProcessTests|MembershipProcessTests'
# The largest suites of real migrations (FaultInjectionTests matches DiskFaultInjectionTests too;
# MigrationEndToEndTests takes its extensions in other files: storage moves, cross-domain,
# ownership, preflight, concurrency, stretched networks).
migrations='MigrationEndToEndTests|FaultInjectionTests|DistanceMigrationTests'

waiting_log=$(mktemp /tmp/hostmesh-waiting-tests.XXXXXX)
migrations_log=$(mktemp /tmp/hostmesh-migration-tests.XXXXXX)
pids=''
trap 'rm -f "$waiting_log" "$migrations_log"' EXIT
# Interrupted: stop every stream (a background job would ignore SIGINT) and fail.
trap 'kill $pids 2>/dev/null; exit 130' INT TERM
"$tests" --testing-library swift-testing --no-parallel --filter "$waiting" >"$waiting_log" 2>&1 &
waiting_pid=$!
pids="$waiting_pid"
"$tests" --testing-library swift-testing --no-parallel --filter "$migrations" >"$migrations_log" 2>&1 &
migrations_pid=$!
pids="$pids $migrations_pid"
"$tests" --testing-library swift-testing --no-parallel --skip "$waiting|$migrations" &
main_pid=$!
pids="$pids $main_pid"
wait $main_pid
main_status=$?
wait $migrations_pid
migrations_status=$?
wait $waiting_pid
waiting_status=$?
echo
echo "== the migration suites ($migrations), run beside the others =="
cat "$migrations_log"
echo
echo "== the waiting suites ($waiting), run beside the others =="
cat "$waiting_log"
[ $main_status -eq 0 ] && [ $migrations_status -eq 0 ] && [ $waiting_status -eq 0 ]
