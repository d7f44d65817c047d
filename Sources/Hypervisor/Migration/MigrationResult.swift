/// The figures of a completed migration, as the agent reports and keeps them.
public struct MigrationResult: Codable, Sendable, Equatable {
    /// Total time from `migrate` to completion as QEMU measured it, ms.
    public var totalTimeMs: Int64
    /// Switchover pause as QEMU measured it, ms.
    public var downtimeMs: Int64
    /// Bytes sent.
    public var transferredBytes: Int64
    /// Average throughput, MB/s (10^6 bytes): transferred ÷ total time.
    public var mbPerSecond: Double
    /// Pre-copy iterations.
    public var iterations: Int
    /// Rungs of the convergence ladder climbed, in order (empty when it converged by itself).
    public var ladder: [ConvergenceLadder.Rung]
    /// The last `query-migrate` sample, digested.
    public var final: MigrationProgress

    /// Builds the figures from the final sample.
    public init(final: MigrationProgress, ladder: [ConvergenceLadder.Rung]) {
        self.final = final
        self.ladder = ladder
        totalTimeMs = final.totalTimeMs
        downtimeMs = final.downtimeMs ?? 0
        transferredBytes = final.transferredBytes
        mbPerSecond = final.averageMBPerSecond
        iterations = final.iteration
    }
}

/// A migration that did not complete. Unless `guestOnSource` is false, the guest still runs on
/// the source.
public enum MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// QEMU reported failure (destination died, stream broke, incompatible devices...).
    case failed(reason: String, last: MigrationProgress)
    /// The convergence ladder cancelled the migration (budget spent).
    case aborted(reason: String, last: MigrationProgress)
    /// Someone else cancelled it (`migrate_cancel`, or this task was cancelled).
    case cancelled(last: MigrationProgress)
    /// The destination QEMU did not end up running the guest.
    case destinationFailed(reason: String)

    /// False only when the failure came after post-copy started: the guest may then be lost.
    public var guestOnSource: Bool {
        switch self {
        case let .failed(_, last), let .aborted(_, last), let .cancelled(last): return last.phase != .postcopy
        case .destinationFailed: return true
        }
    }

    public var description: String {
        switch self {
        case let .failed(reason, last):
            return "migration failed after \(last.totalTimeMs) ms at \(Int(last.percent))%: \(reason); "
                + (guestOnSource ? "the VM keeps running on the source" : "post-copy had started: check both hosts")
        case let .aborted(reason, _):
            return "migration aborted: \(reason); the VM keeps running on the source. Retry with a higher bandwidth, allow post-copy, or reduce the guest's write load"
        case let .cancelled(last):
            return "migration cancelled after \(last.totalTimeMs) ms; the VM keeps running on the source"
        case let .destinationFailed(reason):
            return "the destination did not take over the VM: \(reason)"
        }
    }
}
