/// One observation of a migration, in the units the agent reports: the digested form of
/// `query-migrate`. A value type with no I/O, so the convergence ladder can be tested with
/// synthetic samples.
public struct MigrationProgress: Sendable, Equatable, Codable {
    /// The phase of a migration.
    public enum Phase: String, Sendable, Codable {
        /// No migration (or QEMU reported `none`).
        case none
        /// Connecting and preparing.
        case setup
        /// Pre-copy running.
        case active
        /// Paused before switchover (`pause-before-switchover` capability) until `migrate-continue`.
        case preSwitchover
        /// Post-copy running: the guest already executes on the destination.
        case postcopy
        /// Done: the destination owns the guest.
        case completed
        /// Failed: the guest keeps running on the source (unless post-copy had started).
        case failed
        /// Cancelled (or being cancelled): the guest keeps running on the source.
        case cancelled
        /// Any other QEMU state (`pre-switchover`, `device`, `wait-unplug`, ...).
        case other
    }

    /// The phase.
    public var phase: Phase
    /// QEMU's raw status string.
    public var status: String
    /// Guest RAM, bytes.
    public var ramTotalBytes: Int64
    /// Bytes sent so far.
    public var transferredBytes: Int64
    /// Bytes left in the current pass.
    public var remainingBytes: Int64
    /// Share of RAM not waiting to be (re)sent, 0-100.
    public var percent: Double
    /// Current throughput, bytes per second (from QEMU's mbps).
    public var throughputBytesPerSecond: Double
    /// Dirty rate, bytes per second (`dirty-pages-rate` × page size); 0 until the first sync.
    public var dirtyBytesPerSecond: Double
    /// Pre-copy iteration (dirty-bitmap syncs).
    public var iteration: Int
    /// Milliseconds since the migration started, or the total once it ended.
    public var totalTimeMs: Int64
    /// Switchover pause, ms: QEMU's estimate while active, the measured value once completed.
    public var downtimeMs: Int64?
    /// Current auto-converge throttle, percent (0 when not throttling).
    public var throttlePercent: Int
    /// QEMU's error text when failed.
    public var error: String?

    /// Digests a `query-migrate` answer.
    public init(_ info: MigrationInfo) {
        let status = info.status ?? "none"
        self.status = status
        switch status {
        case "none": phase = .none
        case "setup": phase = .setup
        case "active", "device": phase = .active
        case "pre-switchover": phase = .preSwitchover
        case "postcopy-active", "postcopy-paused", "postcopy-recover-setup", "postcopy-recover": phase = .postcopy
        case "completed": phase = .completed
        case "failed": phase = .failed
        case "cancelled", "cancelling": phase = .cancelled
        default: phase = .other
        }
        let ram = info.ram
        ramTotalBytes = ram?.total ?? 0
        transferredBytes = ram?.transferred ?? 0
        remainingBytes = ram?.remaining ?? 0
        if phase == .completed {
            percent = 100
        } else if ramTotalBytes > 0 {
            percent = max(0, min(100, Double(ramTotalBytes - remainingBytes) / Double(ramTotalBytes) * 100))
        } else {
            percent = 0
        }
        throughputBytesPerSecond = (ram?.mbps ?? 0) * 1_000_000 / 8
        dirtyBytesPerSecond = Double(ram?.dirtyPagesRate ?? 0) * Double(ram?.pageSize ?? 4096)
        iteration = Int(ram?.dirtySyncCount ?? 0)
        totalTimeMs = info.totalTime ?? 0
        downtimeMs = phase == .completed ? info.downtime : info.expectedDowntime
        throttlePercent = Int(info.cpuThrottlePercentage ?? 0)
        error = info.errorDesc
    }

    /// Average throughput over the whole migration, MB/s (10^6 bytes), the benchmark's figure.
    public var averageMBPerSecond: Double {
        totalTimeMs > 0 ? Double(transferredBytes) / 1e6 / (Double(totalTimeMs) / 1000) : 0
    }
}
