#!/usr/bin/env bash
# The hostmesh demo. As root it runs across a lab (Scripts/lab.sh): each host a network namespace
# with its own address on a 1,500-byte bridge, agents on their default wildcard listeners finding
# the address they advertise; otherwise (or with HM_DEMO_LOOPBACK=1) every agent on 127.0.0.1.
# Grows with each capability.
#   1. a domain certifies two hosts
#   2. their agents authenticate each other over a Noise channel and exchange encrypted messages
#   3. a VM boots on node-a and live-migrates to node-b and back, its counter never resetting,
#      while a peer VM pings it and holds a TCP connection to it (gap and survival printed); then
#      an operator pauses it in place for a second: the peer's pings are held and answered after
#      the resume, and a migration of the paused VM is refused
#  3b. a VM whose disk is local to node-a moves with its disk (mirrored through the agents' channel)
#  3c. node-b rotates its host key in the middle of a live migration: the migration's channels
#      re-authenticate in place (no reconnect) and the migration completes
#  3d. fully automated DRS spreads a hot host (two VMs burning CPU, one moves)
#   4. a handover whose destination agent dies right after journaling its commit: the source keeps
#      the guest paused (in doubt) and never guesses; the destination comes back, finishes, and
#      both agree on the owner
#   5. a member killed with SIGKILL is noticed by the others
#   6. a host certified by another domain is refused, and both sides say why
#   7. a key file that others can read is refused
#   8. the domain revokes node-b: node-a cuts it off at once and says why
#   9. lab and a second domain, prod, federate with a stretched network: a VM moves from lab into
#      prod and back while a peer VM in lab keeps pinging it and holds a TCP connection to it
set -euo pipefail
BIN=$(realpath "${1:-.build/release/hostmesh}")
GUEST=$(realpath "${2:-Deploy/out/guest}")
W=$(mktemp -d /tmp/hostmesh-demo.XXXXXX)
PIDS=()
LAB_SCRIPT=$(dirname "$(realpath "$0")")/../Scripts/lab.sh
LAB=
if [ "$(id -u)" = 0 ] && [ -z "${HM_DEMO_LOOPBACK:-}" ] && command -v ip >/dev/null; then LAB=1; fi
export HM_LAB_PREFIX=hmd$(printf %x $(($$ % 65536))) HM_LAB_NET=${HM_DEMO_NET:-10.77.240} HM_LAB_DIR=$W/lab-hosts
# Agents leave their QEMUs running on exit (a restarted agent re-adopts them), so the demo kills both.
cleanup() {
    for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$LAB" ]; then sh "$LAB_SCRIPT" down || true; fi   # kills whatever still runs in the hosts
    pkill -9 -f "$W/" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
# Host i (1 node-a, 2 node-b, 3 node-c, 4 mallory): `on i CMD` runs CMD on it, `listen i` is its
# agent's listener options, `chan i` its channel address (what join and migrate --to take).
# `on` execs: use it only in the background or in a pipeline (a subshell), so that $! is the
# command's own pid (the demo kills agents by it).
if [ -n "$LAB" ]; then
    sh "$LAB_SCRIPT" up 4 >/dev/null
    on() { local i=$1; shift; exec ip netns exec "$HM_LAB_PREFIX-$i" "$@"; }
    # The defaults (wildcard listeners, the advertised address found from the default route);
    # "5" is a second agent on node-b's host (step 7), on other ports.
    listen() { if [ "$1" = 5 ]; then echo "--listen 0.0.0.0:17950 --overlay 0.0.0.0:17960 --gossip 0.0.0.0:17970"; fi; }
    chan() { echo "$HM_LAB_NET.$1:7946"; }
else
    on() { shift; exec "$@"; }
    listen() { echo "--listen 127.0.0.1:$((17945 + $1)) --overlay 127.0.0.1:$((17955 + $1)) --gossip 127.0.0.1:$((17965 + $1))"; }
    chan() { echo "127.0.0.1:$((17945 + $1))"; }
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { sed -e "s|$W|\$DEMO|g" "$@"; }                       # shorten paths
showlog() { sed -e 's/^[^ ]* //' -e "s|$W|\$DEMO|g" "$@"; }   # and drop log timestamps
wait_for() { # wait_for FILE PATTERN [SECONDS]
    for _ in $(seq 1 $(( ${3:-10} * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1"; cat "$1"; return 1
}

step "1. A domain, and two hosts it certifies"
"$BIN" domain init lab --domain-dir "$W/lab" | show
for h in node-a node-b; do
    "$BIN" keys init --state-dir "$W/$h" --host-id "$h" | show
    "$BIN" domain certify --domain-dir "$W/lab" --host-pub "$W/$h/host.pub" --valid-days 30 | show
    "$BIN" keys trust --state-dir "$W/$h" "$W/lab/domain.pub" | show
done
# node-a issues certificates online (renewals, key rotations), so the domain key can stay offline.
"$BIN" domain delegate --domain-dir "$W/lab" --host-pub "$W/node-a/host.pub" | show

step "2. Two agents prove who they are to each other and talk over an encrypted channel"
if [ -n "$LAB" ]; then echo "-- across a lab: hosts $(chan 1 | cut -d: -f1) … $(chan 4 | cut -d: -f1), each a network namespace on a 1,500-byte bridge"; fi
DRS="--drs-interval 4 --drs-sync-interval 1"   # short DRS rounds for step 3c
on 1 "$BIN" agent --state-dir "$W/node-a" $(listen 1) $DRS >"$W/a.log" 2>&1 & PIDS+=($!); disown
wait_for "$W/a.log" "agent listening"
on 2 "$BIN" agent --state-dir "$W/node-b" $(listen 2) $DRS --join "$(chan 1)" >"$W/b.log" 2>&1 & PIDS+=($!); disown
wait_for "$W/b.log" "joined the mesh"
wait_for "$W/b.log" "encrypted note received"
echo "-- node-a's log:"; grep -E "listening|advertis|proved|hello|member joined|keyring" "$W/a.log" | showlog
echo "-- node-b's log:"; grep -E "listening|proved|hello|joined the mesh|note" "$W/b.log" | showlog
echo "-- hostmesh members (as node-a sees the mesh):"
"$BIN" members --state-dir "$W/node-a" | show

step "3. A VM boots on node-a and live-migrates to node-b and back while a peer VM pings it"
A="--state-dir $W/node-a"; B="--state-dir $W/node-b"
"$BIN" vm create demo-vm $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 256 \
    --network default --ip 10.77.0.3/24 --workload heartbeat,echo:7 --start | show
"$BIN" vm create peer-vm $B --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 128 \
    --network default --ip 10.77.0.2/24 --workload ping:10.77.0.3,tcp:10.77.0.3:7 --start | tail -1 | show
hb() { "$BIN" vm console-log demo-vm $1 --lines 200 | grep '^HB' | tail -1; }
peer() { "$BIN" vm console-log peer-vm $B --lines 400 | grep -E "^$1" | tail -1; }
for _ in $(seq 1 150); do [ -n "$(peer 'TCP 10.77.0.3:7 conn=1 ok=[1-9][0-9]')" ] && break; sleep 0.2; done
echo "-- demo-vm on node-a: $(hb "$A")   (HB <boot id> <counter>)"
echo "-- peer-vm on node-b: $(peer PING)"
"$BIN" migrate demo-vm --to "$(chan 2)" $A | show
sleep 2
echo "-- demo-vm now on node-b: $(hb "$B")   (same boot id, the counter kept going)"
echo "-- peer-vm: $(peer PING)"
echo "-- peer-vm: $(peer 'TCP 10.77.0.3')   (conn=1: its TCP connection survived)"
"$BIN" migrate demo-vm --to "$(chan 1)" $B | show
sleep 2
echo "-- demo-vm back on node-a: $(hb "$A")"
echo "-- peer-vm: $(peer PING)   (maxgap_ms: the longest the peer waited for a reply)"
echo "-- peer-vm: $(peer 'TCP 10.77.0.3')"
"$BIN" migrations $A | show
echo "-- an operator pauses demo-vm in place for a second (vm pause), then resumes it (vm resume):"
"$BIN" vm pause demo-vm $A | show
{ "$BIN" migrate demo-vm --to "$(chan 2)" $A 2>&1 || true; } | show   # refused: its destination would run it
sleep 1
"$BIN" vm resume demo-vm $A | show
sleep 4
echo "-- peer-vm: $(peer PING)   (unanswered= as before the pause: what the peer sent meanwhile was held by node-a's switch and answered)"

step "3a. node-a enters maintenance: its VM moves to node-b by itself and the peer keeps its connection; a schedule brings it back"
"$BIN" host maintenance enter node-a --wait $B | show
echo "-- demo-vm now on node-b: $(hb "$B")"
echo "-- peer-vm: $(peer 'TCP 10.77.0.3')   (still conn=1)"
"$BIN" vm create late-vm $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 64 2>&1 | show || true
"$BIN" host maintenance exit node-a $B | show
"$BIN" schedule add --at +15s $B -- migrate demo-vm --to node-a | show   # its owner, node-b, got it under 10 s ago: the occurrence must be more than 10 s after that
sleep 3
echo "-- as node-a sees it (replicated):"
"$BIN" schedule list $A | show
for _ in $(seq 1 80); do "$BIN" schedule history $B | grep -q done && break; sleep 0.5; done
"$BIN" schedule history $B | show
echo "-- demo-vm back on node-a: $(hb "$A")"
echo "-- peer-vm: $(peer 'TCP 10.77.0.3')"
"$BIN" host health set degraded --reason "fan failure (demo)" node-b $A | show
for _ in $(seq 1 40); do "$BIN" host health status node-b $A | grep -q "^node-b: degraded" && break; sleep 0.5; done
echo "-- as node-a sees node-b (gossiped):"
"$BIN" host health status node-b $A | show
"$BIN" host health set healthy node-b $A | show
"$BIN" vm stop demo-vm $A >/dev/null
"$BIN" vm stop peer-vm $B >/dev/null

step "3b. A VM whose disk is local to node-a moves to node-b with its disk (no shared storage)"
truncate -s 32M "$W/node-a-disk.raw"
"$BIN" vm create disk-vm $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 128 \
    --disk "$W/node-a-disk.raw" --workload heartbeat,disk --start | tail -1 | show
dk() { "$BIN" vm console-log disk-vm $1 --lines 400 | grep -E '^DISK [0-9a-f]+ [0-9]+( [0-9]+)?$' | tail -1; }
for _ in $(seq 1 100); do [ -n "$(dk "$A")" ] && break; sleep 0.2; done
echo "-- disk-vm on node-a: $(dk "$A")   (DISK <boot id> <record> <write µs>: a record its disk acknowledged)"
"$BIN" migrate disk-vm --to "$(chan 2)" $A | show
sleep 1
echo "-- disk-vm now on node-b: $(dk "$B")   (the log goes on, on node-b's own copy of the disk)"
echo "-- node-b's copy: $(cd "$W/node-b" && ls disks/*/*)"
[ -e "$W/node-a-disk.raw" ] || echo "-- node-a's image was deleted once node-b ran the guest (migrate --keep-source-disks keeps it)"
"$BIN" vm stop disk-vm $B >/dev/null

step "3c. node-b rotates its host key while a VM live-migrates to it: the channels move to the new key in place"
"$BIN" vm create rot-vm $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 128 \
    --workload heartbeat,dirty:1 --start | tail -1 | show
for _ in $(seq 1 150); do "$BIN" vm console-log rot-vm $A --lines 50 | grep -q '^HB' && break; sleep 0.2; done
OLDKEY=$("$BIN" keys show --state-dir "$W/node-b" | grep 'identity key' | awk '{print $3}')
"$BIN" migrate rot-vm --to "$(chan 2)" --bandwidth 8 $A >"$W/migrate-rot.log" 2>&1 &
MPID=$!
for _ in $(seq 1 300); do "$BIN" migrations $A | grep rot-vm | grep -q transferring && break; sleep 0.1; done
sleep 0.5
echo "-- the migration is transferring at 8 MB/s; node-b rotates its key now"
"$BIN" keys rotate $B | show
wait $MPID && tail -3 "$W/migrate-rot.log" | show
echo "-- node-b's identity key: $OLDKEY -> $("$BIN" keys show --state-dir "$W/node-b" | grep 'identity key' | awk '{print $3}')"
echo "-- node-a's log: the channels re-authenticated in place (the migration stream among them, mid-transfer):"
grep "peer re-authenticated in place" "$W/a.log" | sed -e 's/mesh.cert_serial=[0-9]* //' | showlog
"$BIN" vm list $B | show
"$BIN" vm stop rot-vm $B >/dev/null

step "3d. Fully automated DRS spreads a hot host: two VMs burning CPU start on node-a, the mesh moves one to node-b"
for v in hot1 hot2; do
    "$BIN" vm create $v $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 96 \
        --workload heartbeat,dirty:4000 --append "console=ttyS0 quiet hm.dirtyset=4" --start | tail -1 | show
done
"$BIN" drs set --automation full $B | show
for _ in $(seq 1 120); do "$BIN" vm list $B 2>/dev/null | grep -q hot && break; sleep 0.5; done
grep -h "drs.reason=balance.*DRS moves a VM" "$W/a.log" | showlog || echo "-- no DRS move yet (a loaded machine measures the guests' demand slowly)"
echo "-- node-b now runs:"; "$BIN" vm list $B | grep hot | show || echo "   (no hot VM yet)"
"$BIN" drs status $A | show
"$BIN" drs set --automation partial $A | show
for h in "$A" "$B"; do for v in hot1 hot2; do "$BIN" vm stop $v $h >/dev/null 2>&1 || true; done; done

step "4. A handover whose destination dies after its commit: the source never guesses, and nothing runs twice"
"$BIN" keys init --state-dir "$W/node-c" --host-id node-c >/dev/null
"$BIN" domain certify --domain-dir "$W/lab" --host-pub "$W/node-c/host.pub" >/dev/null
"$BIN" keys trust --state-dir "$W/node-c" "$W/lab/domain.pub" >/dev/null
C="--state-dir $W/node-c"
start_c() { on 3 "$BIN" agent $C $(listen 3) --join "$(chan 2)" >>"$W/c.log" 2>&1 & CPID=$!; disown; }
# A test hook (never set in production) stops node-c right after it has journaled the commit,
# before it answers: the moment a crash hurts most.
HOSTMESH_TEST_PAUSE_AT=destination:committed start_c
wait_for "$W/a.log" "mesh.peer=node-c \\[Agent\\] member joined" 20
"$BIN" vm start demo-vm $A >/dev/null
for _ in $(seq 1 100); do [ -n "$(hb "$A")" ] && break; sleep 0.1; done
sleep 1
echo "-- demo-vm on node-a: $(hb "$A")"
"$BIN" migrate demo-vm --to node-c $A >"$W/migrate-c.log" 2>&1 &
MPID=$!
wait_for "$W/node-c/test-paused-at" "destination:committed" 30
echo "-- node-c journaled the commit; kill -9 its agent before it answers"
kill -9 $CPID
wait $MPID || true
grep -v "^prepare\|^transfer\|^switchover" "$W/migrate-c.log" | show
"$BIN" vm list $A | show
"$BIN" vm resolve demo-vm $A | show
echo "-- node-c's agent comes back: it finds its journaled commit and resumes the guest; node-a asks it (every 5 s) and releases"
start_c
for _ in $(seq 1 200); do "$BIN" vm list $A | grep -q demo-vm || break; sleep 0.1; done
sleep 1
"$BIN" vm list $C | show
echo "-- demo-vm on node-c: $(hb "$C")   (the same boot, the counter went on)"
echo "-- who owns it, as node-a and node-c see it:"
"$BIN" ownership $A | show
"$BIN" ownership $C | show

step "5. A member that dies is noticed by the others (SWIM + Lifeguard, 1 s probes)"
"$BIN" members --state-dir "$W/node-a" | show
echo "-- kill -9 node-c's agent"
kill -9 $CPID
START=$(date +%s.%N)
for _ in $(seq 1 300); do "$BIN" members --state-dir "$W/node-a" | grep -q "node-c .*dead" && break; sleep 0.1; done
echo "-- node-a marked node-c dead after $(echo "$(date +%s.%N) - $START" | bc | cut -c1-4) s:"
"$BIN" members --state-dir "$W/node-a" | show

step "6. A host certified by another domain is refused, and both sides log why"
"$BIN" domain init rogue --domain-dir "$W/rogue" >/dev/null
"$BIN" keys init --state-dir "$W/mallory" --host-id mallory >/dev/null
"$BIN" domain certify --domain-dir "$W/rogue" --host-pub "$W/mallory/host.pub" >/dev/null
"$BIN" keys trust --state-dir "$W/mallory" "$W/rogue/domain.pub" >/dev/null
"$BIN" keys trust --state-dir "$W/mallory" "$W/lab/domain.pub" >/dev/null   # mallory knows lab's public key
on 4 "$BIN" agent --state-dir "$W/mallory" $(listen 4) --join "$(chan 1)" >"$W/m.log" 2>&1 & PIDS+=($!); disown
wait_for "$W/m.log" "join refused"
wait_for "$W/a.log" "refused secure channel"
echo "-- mallory's log:"; grep "join refused" "$W/m.log" | head -1 | showlog
echo "-- node-a's log:";  grep "refused secure channel" "$W/a.log" | showlog

step "7. A key file that others can read is refused"
chmod 644 "$W/node-b/host.key"
on 2 "$BIN" agent --state-dir "$W/node-b" $(listen 5) 2>&1 | show || true
chmod 600 "$W/node-b/host.key"

step "8. The domain revokes node-b: node-a cuts it off at once and says why"
"$BIN" domain revoke node-b --reason "decommissioned (demo)" --domain-dir "$W/lab" --state-dir "$W/node-a" | show
wait_for "$W/a.log" "revocation in force" 10
sleep 1
echo "-- node-a's log:"; grep -E "revocation in force|closed a channel to a revoked host" "$W/a.log" | showlog || true
echo "-- node-b's log:"; grep -E "revocation in force|revoked" "$W/b.log" | tail -3 | showlog || true
"$BIN" members --state-dir "$W/node-a" | show

step "9. Two domains federate: a VM moves from lab into prod and back, its peer in lab keeps its ping and TCP connection (stretched network)"
# prod: its own domain key and one host, node-1, on host 3 (node-c's, whose agent died in step 5).
"$BIN" domain init prod --domain-dir "$W/prod" | show
"$BIN" keys init --state-dir "$W/prod-1" --host-id node-1 >/dev/null
"$BIN" domain certify --domain-dir "$W/prod" --host-pub "$W/prod-1/host.pub" --valid-days 30 >/dev/null
"$BIN" keys trust --state-dir "$W/prod-1" "$W/prod/domain.pub" >/dev/null
on 3 "$BIN" agent --state-dir "$W/prod-1" $(listen 3) >"$W/p.log" 2>&1 & PIDS+=($!); disown
wait_for "$W/p.log" "agent listening"
P="--state-dir $W/prod-1"
# Each domain decides for itself: lab lets prod in, prod lets lab in; "default" is stretched both ways.
"$BIN" domain federate --peer-key "$W/prod/domain.pub" --all-vms --network default=default:stretched --domain-dir "$W/lab" $A | show
"$BIN" domain federate --peer-key "$W/lab/domain.pub" --all-vms --network default=default:stretched \
    --storage-dir "$W/prod-1/incoming" --domain-dir "$W/prod" $P | show
"$BIN" domain federation list $P | show
"$BIN" vm create xd-vm $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 128 \
    --network default --ip 10.77.1.3/24 --workload heartbeat,echo:7 --start | tail -1 | show
"$BIN" vm create xd-peer $A --kernel "$GUEST/kernel" --initrd "$GUEST/initrd.img" --memory 128 \
    --network default --ip 10.77.1.2/24 --workload ping:10.77.1.3,tcp:10.77.1.3:7 --start | tail -1 | show
xpeer() { "$BIN" vm console-log xd-peer $A --lines 400 | grep -E "^$1" | tail -1; }
xhb() { "$BIN" vm console-log xd-vm $1 --lines 200 | grep '^HB' | tail -1; }
for _ in $(seq 1 150); do [ -n "$(xpeer 'TCP 10.77.1.3:7 conn=1 ok=[1-9][0-9]')" ] && break; sleep 0.2; done
echo "-- xd-vm in lab (node-a): $(xhb "$A")"
echo "-- the checklist across domains first (moves nothing):"
"$BIN" migrate xd-vm --to-domain prod --via "$(chan 3)" --check $A | show || true
"$BIN" migrate xd-vm --to-domain prod --via "$(chan 3)" $A | show
sleep 2
echo "-- xd-vm now in prod (node-1@prod): $(xhb "$P")   (same boot id, the counter kept going)"
echo "-- xd-peer, still in lab: $(xpeer PING)"
echo "-- xd-peer: $(xpeer 'TCP 10.77.1.3')   (conn=1: its TCP connection crossed the boundary)"
echo "-- lab's tombstone (its MAC and id are not reused in lab while it is away):"
"$BIN" domain federation tombstones $A | show
"$BIN" migrate xd-vm --to-domain lab --via "$(chan 1)" $P | show
sleep 2
echo "-- xd-vm back in lab: $(xhb "$A")"
echo "-- xd-peer: $(xpeer PING)   (maxgap_ms: the longest it waited for a reply across both moves)"
echo "-- xd-peer: $(xpeer 'TCP 10.77.1.3')"
"$BIN" ownership $P | show

step "done: agents formed a mesh and authenticated each other, a running VM moved between them and back with its network identity, a host was evacuated for maintenance and a scheduled migration ran, a handover survived its destination's crash with one copy, a dead member was noticed, an outsider and a careless key were refused, fully automated DRS spread a hot host, a host key rotated mid-migration without a reconnect, a revoked host was cut off, and a VM moved into a federated domain and back with its peer's connection kept"
