#!/usr/bin/env bash
# Installs QEMU 9.0 or later (`make deps` runs this before its other packages). Debian 12 ships
# QEMU 7.2, which under TCG must be given 8 KiB more guest RAM than asked to avoid losing guest
# writes in migrations, and then stops the guest for its whole migration setup (hundreds of ms
# at 512 MiB; see Sources/Hypervisor/VM/GuestRAM.swift). Debian's own bookworm-backports has
# QEMU 10.0. Hostmesh runs on 7.2 too: where backports cannot be had (offline, a mirror without
# it), this warns and leaves it to `make deps` to install the distribution's QEMU.
set -uo pipefail
major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n '1s/.*version \([0-9][0-9]*\)\..*/\1/p')
if [ -n "$major" ] && [ "$major" -ge 9 ]; then exit 0; fi
warn() { echo "warning: $*; Hostmesh pads TCG guests' RAM on QEMU before 9.0 (Sources/Hypervisor/VM/GuestRAM.swift)" >&2; exit 0; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$codename" = bookworm ] || { [ -z "$major" ] || warn "QEMU ${major}.x is older than 9.0 and this is not Debian 12 (no bookworm-backports)"; exit 0; }
backports_known() { apt-cache policy 2>/dev/null | grep -q 'n=bookworm-backports'; }
export DEBIAN_FRONTEND=noninteractive
if ! backports_known; then
    if ! grep -qs '^[[:space:]]*deb[[:space:]].*bookworm-backports\|^Suites:.*bookworm-backports' \
            /etc/apt/sources.list $(ls /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null); then
        # The mirror this machine already uses for Debian, so an internal one keeps serving it.
        uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
        [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
        uri=${uri:-http://deb.debian.org/debian}
        echo "adding Debian's bookworm-backports (QEMU 10.0) from $uri to /etc/apt/sources.list.d/bookworm-backports.sources"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$uri" > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq || warn "apt-get update failed, so QEMU 10 from bookworm-backports is not installed"
    backports_known || warn "no package source offers bookworm-backports, so QEMU 10 is not installed"
fi
installed=${major:+QEMU ${major}.x}
echo "installing QEMU from bookworm-backports (installed now: ${installed:-none})"
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils \
    || warn "installing QEMU from bookworm-backports failed"
