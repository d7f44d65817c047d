import Foundation

/// One `{"progress": …}` line of a `migrate` call (Protocol.md §7): where an outgoing migration
/// is, for the command line.
///
/// Not `MigrationProgress`: that name is `Hypervisor`'s digested `query-migrate` sample, and
/// every module that sees this type also imports `Hypervisor`.
public struct MigrationProgressUpdate: Codable, Sendable, Equatable {
    /// Phase: queued, busy (the destination is at its limit: asked again after a while), prepare,
    /// transfer, postcopy, switchover, or "chose HOST" when `--auto` picked one.
    public var phase: String
    /// Share of RAM not waiting to be (re)sent, 0-100.
    public var percent: Double
    /// Current throughput, MB/s (10^6 bytes).
    public var mbPerSecond: Double
    /// Rate at which the guest dirties memory, MB/s.
    public var dirtyMBPerSecond: Double
    /// Pre-copy round, from 0.
    public var iteration: Int
    /// Convergence measure in force ("normal" until the ladder acts; "auto" while choosing).
    public var rung: String
    /// With phase "queued": the migration's place in this host's queue (1 = next); else nil.
    public var queuePosition: Int?
    /// For a VM with local disks, from the start of the mirrors on: bytes of its local disks on
    /// the destination so far (all of them once the mirrors are synchronised: they then keep
    /// the destination in step while memory moves). Nil without local disks or before the mirrors.
    public var diskCopiedBytes: Int64?
    /// For a VM with local disks: the virtual size of its local disks together, bytes; else nil.
    public var diskTotalBytes: Int64?
    /// For a VM with local disks: "background", or "write-blocking" once a disk's mirror did
    /// not converge and switched (§6.7); else nil.
    public var diskMode: String?
    /// Round trip to the destination, ms, from the kernel's measure on the migration stream's
    /// connection; nil before the stream is up (and in the disk mirror's phase).
    public var rttMs: Double?
    /// Link use: the current throughput over the link's rate (`MigrationSettings.linkMbit`), 0-1
    /// (a little above 1 can show: QEMU counts pages, not wire bytes); nil when no rate was given.
    public var linkUse: Double?

    /// The fields as named.
    public init(phase: String, percent: Double, mbPerSecond: Double, dirtyMBPerSecond: Double, iteration: Int, rung: String,
                queuePosition: Int? = nil, diskCopiedBytes: Int64? = nil, diskTotalBytes: Int64? = nil, diskMode: String? = nil,
                rttMs: Double? = nil, linkUse: Double? = nil) {
        self.phase = phase
        self.percent = percent
        self.mbPerSecond = mbPerSecond
        self.dirtyMBPerSecond = dirtyMBPerSecond
        self.iteration = iteration
        self.rung = rung
        self.queuePosition = queuePosition
        self.diskCopiedBytes = diskCopiedBytes
        self.diskTotalBytes = diskTotalBytes
        self.diskMode = diskMode
        self.rttMs = rttMs
        self.linkUse = linkUse
    }

    /// Link use for `mbPerSecond` (10^6 bytes/s) over a link of `linkMbit` Mbit/s; nil without a rate.
    public static func linkUse(mbPerSecond: Double, linkMbit: Int64?) -> Double? {
        guard let linkMbit, linkMbit > 0 else { return nil }
        return mbPerSecond * 8 / Double(linkMbit)
    }

    /// "disks 12.0/32.0 MB" (with the mode once known) for a VM with local disks, else nil.
    public var diskSummary: String? {
        guard let diskCopiedBytes, let diskTotalBytes else { return nil }
        return String(format: "disks %.1f/%.1f MB", Double(diskCopiedBytes) / 1e6, Double(diskTotalBytes) / 1e6) + (diskMode.map { " " + $0 } ?? "")
    }

    /// Waiting in this host's queue at `position` (1 = next).
    public static func queued(position: Int) -> MigrationProgressUpdate {
        MigrationProgressUpdate(phase: "queued", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal", queuePosition: position)
    }
}
