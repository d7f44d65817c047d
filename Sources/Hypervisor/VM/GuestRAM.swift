/// How much RAM QEMU gives a guest whose spec asks for `memoryMiB`, and why it is not always
/// exactly that.
///
/// Under TCG, QEMU before 9.0 (Debian 12 ships 7.2) syncs a RAM block whose length is a multiple
/// of 64 pages (256 KiB) through a fast path that clears dirty bits without resetting TCG's TLB,
/// so guest writes through a TLB entry made before the sync are not tracked and the destination
/// gets stale pages (fixed in QEMU 9.0 by commit 03bfc2188f, "Fix migration dirty bitmap
/// coherency with TCG memory access"). Seen here as guest kernel panics after a migration and as
/// lost writes of the `memcheck` workload (`TCGDirtyTrackingTests`). On such a QEMU the RAM is
/// 8 KiB larger than asked (QEMU's `-m` granule), so its length is no such multiple and the
/// sync takes the per-page path, which resets the TLB. KVM tracks dirty pages in the kernel and
/// is unaffected.
///
/// The price of the padding: the per-page path walks the vCPUs' TLBs once per dirty page, and at
/// a migration's first sync every page is dirty, all under QEMU's big lock, so the guest stops
/// answering for QEMU's whole `setup-time` (65 / 143 / 335 ms for 128 / 256 / 512 MiB on QEMU 7.2
/// at load 9-10, 556-618 ms at 512 MiB on QEMU 10.0 quiet, against 1-8 ms aligned;
/// `Scripts/precopy-stall.py`). So from 9.0 on the RAM is exactly what the spec asks.
///
/// What QEMU 9.0's fix leaves (read in QEMU 10.0.2's source, `include/exec/ram_addr.h`; not seen
/// in a run): the fast path resets the TLB only when a sync found a page not already waiting to
/// be sent. A sync that clears only pages still waiting leaves their writable TLB entries, and a
/// write after such a page is sent is missed. The syncs at the end of a pass (nothing is then
/// waiting) and at the switchover (the guest is stopped, or stops before more is sent) cannot
/// be such a sync; from QEMU 9.2, auto-converge adds one every 5 s in a long pass, which can, if
/// every page the guest wrote in those 5 s is still waiting. A pass sends pages in address
/// order from the bottom, and a Linux guest writes its kernel's timekeeping data, in the kernel
/// image a few tens of MiB up, on every tick: once a pass has moved past it (within 5 s at any
/// rate above about 10 MB/s) that page is written again, found new, and the whole block is reset.
/// `TCGDirtyTrackingTests` watches for lost writes.
///
/// Both ends of a migration must give the guest the same RAM, so the destination takes the
/// source's figure (`MigrationPrepare.memory_kib`, Protocol.md §6.1) rather than its own rule,
/// and refuses one its QEMU cannot run safely (`refusal`).
public enum GuestRAM {
    /// The first QEMU whose aligned fast path resets TCG's TLB.
    public static let tcgFastPathFixedIn = QEMUVersion(major: 9, minor: 0)

    /// The padding under TCG on an older QEMU: QEMU's `-m` granule.
    static let paddingKiB = 8

    /// The RAM, in KiB, this host's QEMU (`qemu`) gives a guest it starts under `accelerator`.
    public static func kib(memoryMiB: Int, accelerator: AcceleratorChoice, qemu: QEMUVersion) -> Int {
        needsPadding(accelerator, qemu) ? memoryMiB * 1024 + paddingKiB : memoryMiB * 1024
    }

    /// What an agent that did not say (before `memory_kib`) gave the guest: it always padded under TCG.
    public static func legacyKiB(memoryMiB: Int, accelerator: AcceleratorChoice) -> Int {
        accelerator == .tcg ? memoryMiB * 1024 + paddingKiB : memoryMiB * 1024
    }

    /// Whether `kib` is what some QEMU gives a guest of `memoryMiB`: exactly it, or padded.
    public static func explains(kib: Int, memoryMiB: Int) -> Bool {
        kib == memoryMiB * 1024 || kib == memoryMiB * 1024 + paddingKiB
    }

    /// The RAM, in KiB, of a QEMU command line (`-m 512M`, `-m 524296k`, QEMU's default unit
    /// MiB); nil when it has no `-m` this reads.
    public static func kib(inArguments arguments: [String]) -> Int? {
        guard let flag = arguments.firstIndex(of: "-m"), flag + 1 < arguments.count else { return nil }
        var value = Substring(arguments[flag + 1])
        if let comma = value.firstIndex(of: ",") { value = value[..<comma] }
        if value.hasPrefix("size=") { value = value.dropFirst(5) }
        let unit = value.last.map { $0.isLetter ? $0.lowercased() : "m" } ?? "m"
        guard let number = Int(value.last?.isLetter == true ? value.dropLast() : value), number > 0 else { return nil }
        switch unit {
        case "k": return number
        case "m": return number.multipliedReportingOverflow(by: 1024).overflow ? nil : number * 1024
        case "g": return number.multipliedReportingOverflow(by: 1 << 20).overflow ? nil : number << 20
        default: return nil
        }
    }

    /// Why this host's QEMU (`qemu`) cannot run, under `accelerator`, a guest that arrives with
    /// `kib` KiB of RAM for a spec of `memoryMiB`; nil when it can.
    public static func refusal(kib: Int, memoryMiB: Int, accelerator: AcceleratorChoice, qemu: QEMUVersion) -> String? {
        guard explains(kib: kib, memoryMiB: memoryMiB) else {
            return "the source runs the guest with \(kib) KiB of RAM, which its spec's \(memoryMiB) MiB does not explain; "
                + "restart the VM on its source so that it runs with the spec's memory, then migrate it"
        }
        if needsPadding(accelerator, qemu) && kib % 256 == 0 {
            return "QEMU \(qemu) here loses guest writes when it migrates a TCG guest whose RAM (\(kib) KiB) is a multiple of 256 KiB "
                + "(fixed in QEMU \(tcgFastPathFixedIn)), so the guest could not safely leave this host again; "
                + "upgrade QEMU here to \(tcgFastPathFixedIn) or later (Debian 12: bookworm-backports), or choose another destination"
        }
        return nil
    }

    private static func needsPadding(_ accelerator: AcceleratorChoice, _ qemu: QEMUVersion) -> Bool {
        accelerator == .tcg && qemu < tcgFastPathFixedIn
    }
}
