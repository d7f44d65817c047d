/// The figures of a completed migration: the `migrate` result.
public struct MigrationReport: Codable, Sendable, Equatable {
    /// From the start of the migration to the guest running on the destination, ms.
    public var totalMs: Int64
    /// Guest pause as QEMU measured it on the source, ms.
    public var qemuDowntimeMs: Int64
    /// From the source's completion to the destination's confirmation that the guest runs, ms:
    /// the part of the pause the agents add for the safe handover.
    public var switchoverMs: Int64
    /// Guest-visible pause: QEMU's downtime plus the handover, ms.
    public var downtimeMs: Int64
    /// Bytes QEMU moved.
    public var transferredBytes: Int64
    /// Average throughput, MB/s (10^6 bytes).
    public var mbPerSecond: Double
    /// Pre-copy iterations.
    public var iterations: Int
    /// Convergence measures taken, in order (downtime raised, throttled, post-copy); empty when
    /// pre-copy converged on its own.
    public var ladder: [String]
    /// Secure channels that carried the stream (1 unless multifd or striped at distance, Protocol.md §6.14).
    public var streams: Int
    /// Where the time went, ms: `connect` (and authenticate), `prepare` (destination ready), with
    /// local disks `open` (tunnels opened) and `mirror` (to synchronised), `transfer` (QEMU's),
    /// `handover`; nil from agents that predate the breakdown.
    public var phasesMs: [String: Int64]?
    /// True when the guest moved in post-copy (it ran on the destination while pages followed);
    /// nil from agents that predate post-copy.
    public var postcopy: Bool?
    /// The local disks mirrored with the VM, one entry each; nil when there were none (or from
    /// agents that predate storage migration).
    public var disks: [DiskMirrorReport]?

    /// The figures as named; the optional ones default to nil.
    public init(totalMs: Int64, qemuDowntimeMs: Int64, switchoverMs: Int64, downtimeMs: Int64, transferredBytes: Int64,
                mbPerSecond: Double, iterations: Int, ladder: [String], streams: Int,
                phasesMs: [String: Int64]? = nil, postcopy: Bool? = nil, disks: [DiskMirrorReport]? = nil) {
        self.totalMs = totalMs
        self.qemuDowntimeMs = qemuDowntimeMs
        self.switchoverMs = switchoverMs
        self.downtimeMs = downtimeMs
        self.transferredBytes = transferredBytes
        self.mbPerSecond = mbPerSecond
        self.iterations = iterations
        self.ladder = ladder
        self.streams = streams
        self.phasesMs = phasesMs
        self.postcopy = postcopy
        self.disks = disks
    }
}
