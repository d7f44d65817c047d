#!/usr/bin/env bash
# Installs QEMU 9.0 or later (`make deps` runs this before its other packages). Debian 12 ships
# QEMU 7.2, which under TCG must be given 8 KiB more guest RAM than asked to avoid losing guest
# writes in migrations, and then stops the guest for its whole migration setup (hundreds of ms
# at 512 MiB; see Sources/Hypervisor/VM/GuestRAM.swift). Debian's own bookworm-backports has
# QEMU 10.0. Hostmesh runs on 7.2 too; this only picks the better QEMU where Debian has one.
set -euo pipefail
major=$(qemu-system-x86_64 --version 2>/dev/null | sed -n '1s/.*version \([0-9][0-9]*\)\..*/\1/p' || true)
if [ -n "$major" ] && [ "$major" -ge 9 ]; then exit 0; fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ "$codename" != bookworm ]; then
    [ -n "$major" ] || exit 0 # not installed: make deps installs the distribution's QEMU next
    echo "warning: QEMU ${major}.x is older than 9.0 and this is not Debian 12 (no bookworm-backports here);" \
         "Hostmesh pads TCG guests' RAM on it (see Sources/Hypervisor/VM/GuestRAM.swift)" >&2
    exit 0
fi
if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding Debian's bookworm-backports (QEMU 10.0) to /etc/apt/sources.list.d/bookworm-backports.sources"
    cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'LIST'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
fi
installed=${major:+QEMU ${major}.x}
echo "installing QEMU from bookworm-backports (installed now: ${installed:-none})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 qemu-utils
