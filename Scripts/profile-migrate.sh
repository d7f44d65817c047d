#!/bin/sh
# Where the agents' CPU goes per migrated byte (issue 18): runs `hostmesh bench migrate` under
# `perf record -g` and prints the per-hop breakdown of the two agents (both live in the
# benchmark's process) while the tunnelled migrations ran: seal, open, unix read, TCP write,
# TCP read, unix write, and everything else (wake-ups, allocations, copies, QMP, SQLite), in
# share of the agents' CPU and in CPU seconds per GB moved, beside the AEAD floor.
#
#   Scripts/profile-migrate.sh [BENCH MIGRATE OPTIONS...]     e.g. --rounds 3
#
# Needs perf (Debian: linux-perf) and python3, and root (or kernel.perf_event_paranoid <= 1).
# HOSTMESH: the binary (default .build/release/hostmesh: profile a release build);
# OUT: where perf.data, the script output, the benchmark's JSON and the load go
# (default /tmp/hostmesh-profile); FREQ: samples per second per CPU (default 999).
# The load average before and after is printed: on a shared machine, name it beside the figures.
set -eu

HOSTMESH=${HOSTMESH:-.build/release/hostmesh}
OUT=${OUT:-/tmp/hostmesh-profile}
FREQ=${FREQ:-999}
HERE=$(dirname "$0")
mkdir -p "$OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load"
perf record -q -F "$FREQ" -g -o "$OUT/perf.data" -- "$HOSTMESH" bench migrate --json "$@" > "$OUT/bench.json"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load"
perf script -i "$OUT/perf.data" -F comm,pid,tid,time,ip,sym,dso > "$OUT/perf.script" 2>/dev/null
python3 "$HERE/migration-hops.py" "$OUT/perf.script" "$OUT/bench.json" "$FREQ"
