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

    /// The fields as named.
    public init(phase: String, percent: Double, mbPerSecond: Double, dirtyMBPerSecond: Double, iteration: Int, rung: String,
                queuePosition: Int? = nil) {
        self.phase = phase
        self.percent = percent
        self.mbPerSecond = mbPerSecond
        self.dirtyMBPerSecond = dirtyMBPerSecond
        self.iteration = iteration
        self.rung = rung
        self.queuePosition = queuePosition
    }

    /// Waiting in this host's queue at `position` (1 = next).
    public static func queued(position: Int) -> MigrationProgressUpdate {
        MigrationProgressUpdate(phase: "queued", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal", queuePosition: position)
    }
}
