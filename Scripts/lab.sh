#!/bin/sh
# A lab of N hosts on one machine (needs root and iproute2): each host is a network namespace
# with its own address on a Linux bridge, the way separate machines sit on one Ethernet segment.
#
#   Scripts/lab.sh up N     build hosts 1..N (removes a previous lab of the same prefix first)
#   Scripts/lab.sh down     remove everything `up` made; safe when nothing exists
#   Scripts/lab.sh status   list the hosts
#
# What `up` makes, for PREFIX (HM_LAB_PREFIX, default hm-lab) and NET (HM_LAB_NET, the first three
# octets of a /24, default 10.77.100):
#   PREFIX-br             a bridge in the root namespace, NET.254/24, MTU 1500
#   PREFIX-<i>            a namespace per host: lo up, eth0 = NET.<i>/24 at MTU 1500 (a veth whose
#                         other end PREFIX-v<i> is on the bridge), default route via NET.254 (so an
#                         agent with wildcard listeners has an interface to advertise)
#   DIR/shared            a directory every host sees at the same path: it stands for shared storage
#                         (DIR is HM_LAB_DIR, default /tmp/PREFIX)
#   DIR/hosts             one line per host: namespace and address
# Two sites (HM_LAB_SITE_B_FROM=k, 2 <= k <= N): hosts k..N sit on a second bridge PREFIX-bb
# (site B) with the same /24 and no address, and nothing joins the two bridges: the test or
# benchmark that made the lab joins them through a userspace link emulator (a tap device on each
# bridge, LinkEmulator's FrameLink), so everything between the sites meets its delay, rate and
# loss at the frame level, TCP windows and all.
# Only these addresses are used. IP forwarding in the root namespace is left as it is (off on the
# build machines), so nothing from a lab host reaches a real network through the bridge.
# Run hosts' commands with: ip netns exec PREFIX-<i> COMMAND
set -eu

PREFIX=${HM_LAB_PREFIX:-hm-lab}
NET=${HM_LAB_NET:-10.77.100}
DIR=${HM_LAB_DIR:-/tmp/$PREFIX}
BRIDGE=$PREFIX-br
SITE_B_BRIDGE=$PREFIX-bb
SITE_B_FROM=${HM_LAB_SITE_B_FROM:-0}

die() { echo "lab.sh: $*" >&2; exit 1; }

# Interface names are at most 15 bytes: the longest we make is PREFIX-v<i>.
[ ${#PREFIX} -le 10 ] || die "HM_LAB_PREFIX \"$PREFIX\" is longer than 10 characters (interface names are limited to 15)"
case $PREFIX in *[!A-Za-z0-9_-]*|'') die "HM_LAB_PREFIX \"$PREFIX\" may hold only letters, digits, _ and -" ;; esac
case $DIR in /?*) ;; *) die "HM_LAB_DIR \"$DIR\" must be an absolute path below /" ;; esac

namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-[0-9]+\$" || true
}

down() {
    for ns in $(namespaces); do
        # Whatever still runs in a host (agents, QEMUs) dies with it, as on a powered-off machine.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns delete "$ns" 2>/dev/null || true
    done
    # Deleting a namespace deletes its veth end and with it the bridge's; these are left only by a
    # lab that failed half-way.
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^$PREFIX-v[0-9]+\$" || true); do
        ip link delete "$link" 2>/dev/null || true
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
    if ip link show "$SITE_B_BRIDGE" >/dev/null 2>&1; then ip link delete "$SITE_B_BRIDGE"; fi
    # Only what `up` made: DIR may be a directory of the user's choosing.
    rm -rf "$DIR/shared"
    rm -f "$DIR/hosts"
    rmdir "$DIR" 2>/dev/null || true
}

up() {
    n=$1
    case $n in ''|*[!0-9]*) die "up needs a number of hosts, 1 to 253" ;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 253 ] || die "up needs a number of hosts, 1 to 253"
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
    command -v ip >/dev/null || die "ip not found: apt-get install iproute2"
    down
    # A lab that fails half-way is removed, not left for the next run to trip over.
    trap 'echo "lab.sh: up failed; removing what it made" >&2; down' EXIT
    # nf_call_iptables 0: bridged frames between hosts do not go through the root namespace's
    # iptables (br_netfilter may be loaded, and a FORWARD policy of DROP would cut the lab).
    ip link add "$BRIDGE" type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
    ip link set "$BRIDGE" mtu 1500
    ip addr add "$NET.254/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    case $SITE_B_FROM in *[!0-9]*|'') die "HM_LAB_SITE_B_FROM \"$SITE_B_FROM\" must be a host number" ;; esac
    if [ "$SITE_B_FROM" -ne 0 ]; then
        [ "$SITE_B_FROM" -ge 2 ] && [ "$SITE_B_FROM" -le "$n" ] || die "HM_LAB_SITE_B_FROM must be 2 to $n (the first host of site B)"
        ip link add "$SITE_B_BRIDGE" type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
        ip link set "$SITE_B_BRIDGE" mtu 1500
        ip link set "$SITE_B_BRIDGE" up
    fi
    mkdir -p "$DIR/shared"
    : >"$DIR/hosts"
    i=1
    while [ "$i" -le "$n" ]; do
        ns=$PREFIX-$i
        ip netns add "$ns"
        ip link add "$PREFIX-v$i" mtu 1500 type veth peer name eth0 mtu 1500 netns "$ns"
        bridge=$BRIDGE
        if [ "$SITE_B_FROM" -ne 0 ] && [ "$i" -ge "$SITE_B_FROM" ]; then bridge=$SITE_B_BRIDGE; fi
        ip link set "$PREFIX-v$i" master "$bridge" up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$NET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via "$NET.254" dev eth0
        echo "$ns $NET.$i" >>"$DIR/hosts"
        i=$((i + 1))
    done
    trap - EXIT
    if [ "$SITE_B_FROM" -ne 0 ]; then echo "lab $PREFIX: site B (hosts $SITE_B_FROM-$n) on bridge $SITE_B_BRIDGE, joined to $BRIDGE only by a link emulator"; fi
    echo "lab $PREFIX: $n hosts on bridge $BRIDGE ($NET.0/24, MTU 1500), shared storage $DIR/shared"
    cat "$DIR/hosts"
}

case ${1:-} in
    up) up "${2:-}" ;;
    down) down ;;
    status)
        if [ -f "$DIR/hosts" ]; then cat "$DIR/hosts"; else echo "no lab $PREFIX"; fi ;;
    *) die "usage: lab.sh up N | down | status (environment: HM_LAB_PREFIX, HM_LAB_NET, HM_LAB_DIR, HM_LAB_SITE_B_FROM)" ;;
esac
