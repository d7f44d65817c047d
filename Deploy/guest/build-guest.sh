#!/bin/bash
# Build the Hostmesh test guest: a Debian kernel plus a busybox initramfs whose /init
# runs the workloads named on the kernel command line (see README.md).
#   Deploy/guest/build-guest.sh [OUTDIR]      (default Deploy/out/guest)
# Prints KERNEL=<path> and INITRD=<path> on stdout (usable with eval); progress goes
# to stderr. KERNEL is the uncompressed ELF vmlinux, which QEMU boots through PVH:
# that skips the in-guest xz decompression and halves TCG boot time (about 1.6 s vs
# 3.8 s to "ready"). If it cannot be extracted, KERNEL is the bzImage (also bootable). Cached: if the outputs are newer than every input, it only prints them.
# The kernel .deb is kept in OUTDIR; delete it to pick up a newer Debian kernel.
# Needs: apt, dpkg-deb, busybox-static, cpio, gzip, gcc + libc6-dev (static libc).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-$HERE/../out/guest}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
KERNEL=$OUT/kernel
INITRD=$OUT/initrd.img
INPUTS=("$HERE/build-guest.sh" "$HERE/init" "$HERE"/src/*.c)

# Required modules, in load order (each depends on the ones before it).
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         failover net_failover virtio_net)
OPTIONAL_MODULES=(virtio_blk virtio_console)
BUSYBOX=${BUSYBOX:-/bin/busybox}

report() { echo "KERNEL=$KERNEL"; echo "INITRD=$INITRD"; }
log() { echo "build-guest: $*" >&2; }

up_to_date() {
    local out in debs=("$OUT"/linux-image-*.deb)
    [ -f "${debs[0]}" ] || return 1 # deleting the .deb is how to pick up a new kernel
    for out in "$KERNEL" "$INITRD"; do
        [ -f "$out" ] || return 1
        for in in "${INPUTS[@]}" "$BUSYBOX" "${debs[@]}"; do [ "$out" -nt "$in" ] || return 1; done
    done
}

if up_to_date; then report; exit 0; fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- kernel package: the linux-image-<version>-amd64 that linux-image-amd64 points to.
kernel_deb() {
    local deb pkg
    deb=$(ls "$OUT"/linux-image-*.deb 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$deb" ]; then echo "$deb"; return; fi
    resolve() {
        apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-.*-amd64$/ { print $2; exit }'
    }
    pkg=$(resolve)
    # Only touch the package lists when we cannot resolve or download without them.
    if [ -z "$pkg" ] || ! (cd "$OUT" && apt-get download "$pkg" >&2); then
        log "apt-get update (package lists missing or stale)"
        apt-get update >&2
        pkg=$(resolve)
        [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64"; exit 1; }
        (cd "$OUT" && apt-get download "$pkg" >&2)
    fi
    ls "$OUT"/"$pkg"_*.deb | sort -V | tail -n 1
}
DEB=$(kernel_deb)
log "kernel package $(basename "$DEB")"

# Extract only what we use (the full package is ~400 MB unpacked).
patterns=('./boot/vmlinuz-*')
for m in "${MODULES[@]}" "${OPTIONAL_MODULES[@]}"; do patterns+=("*/$m.ko" "*/$m.ko.*"); done
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$TMP" --wildcards "${patterns[@]}" 2>/dev/null || true
vmlinuz=$(ls "$TMP"/boot/vmlinuz-* 2>/dev/null | head -n 1 || true)
[ -n "$vmlinuz" ] || { log "no boot/vmlinuz-* in $DEB"; exit 1; }

# --- initramfs tree
ROOT=$TMP/root
mkdir -p "$ROOT"/{bin,lib/modules,proc,sys,dev,tmp}

# Modules may be plain, .xz or .zst depending on the kernel; busybox insmod wants plain.
add_module() {
    local f
    f=$(find "$TMP/lib/modules" -name "$1.ko" -o -name "$1.ko.*" 2>/dev/null | head -n 1)
    [ -n "$f" ] || return 1
    case "$f" in
        *.ko) cp "$f" "$ROOT/lib/modules/$1.ko" ;;
        *.ko.xz) xz -dc "$f" >"$ROOT/lib/modules/$1.ko" ;;
        *.ko.zst) zstd -dcq "$f" >"$ROOT/lib/modules/$1.ko" ;;
        *) log "unknown module compression: $f"; return 1 ;;
    esac
}
for m in "${MODULES[@]}"; do add_module "$m" || { log "module $m missing in $DEB"; exit 1; }; done
for m in "${OPTIONAL_MODULES[@]}"; do add_module "$m" || log "optional module $m absent"; done

# busybox must be the static build (busybox-static): there is no libc in the guest.
if readelf -l "$BUSYBOX" | grep -q 'program interpreter'; then
    log "$BUSYBOX is dynamically linked; install busybox-static"; exit 1
fi
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ -e "$ROOT/bin/$applet" ] || ln -s busybox "$ROOT/bin/$applet"
done

gcc -static -O2 -s -Wall -o "$ROOT/bin/hmtool" "$HERE/src/hmtool.c"
install -m 0755 "$HERE/init" "$ROOT/init"

# newc cpio owned by root (the kernel needs newc; ownership matters for nothing else).
(cd "$ROOT" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 >"$TMP/initrd.img"

# --- kernel: unpack the vmlinux ELF from the bzImage (xz payload, like the kernel's
# scripts/extract-vmlinux) and keep it only if it has the PVH entry note (Xen note 0x12).
off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$vmlinuz" | head -n 1 | cut -d: -f1 || true)
# (xz stops at the end of its stream, so tail may die of SIGPIPE: ignore its status.)
if [ -n "$off" ] && { tail -c +$((off + 1)) "$vmlinuz" || true; } |
    xz -dcq --single-stream >"$TMP/vmlinux" 2>/dev/null &&
    readelf -n "$TMP/vmlinux" 2>/dev/null | grep -q 'note type: (0x00000012)'; then
    mv "$TMP/vmlinux" "$TMP/kernel"
else
    log "no PVH vmlinux in $(basename "$vmlinuz"), using the bzImage (slower boot)"
    cp "$vmlinuz" "$TMP/kernel"
fi

# Replace the outputs only once everything succeeded, so a failed build is never cached.
mv "$TMP/initrd.img" "$INITRD"
mv "$TMP/kernel" "$KERNEL"
log "built $(du -h "$INITRD" | cut -f1) initramfs"
report
