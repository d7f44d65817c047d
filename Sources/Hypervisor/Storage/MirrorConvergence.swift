/// Decides when a disk mirror in background mode does not converge (Protocol.md §6.7,
/// "Convergence"): a pure function of the jobs' figures over time, no I/O, no clock of its own.
///
/// A background mirror copies what the guest wrote after the write completed; when the guest
/// writes as fast as the mirror copies, what is left to copy (`len - offset`) stops shrinking and
/// the mirror is never ready. The detector remembers, per job, the least remaining seen and when
/// it last fell by a meaningful step; a job that has not made such progress for `stallAfter` is
/// to switch to write-blocking mode (a guest write then completes only once it is on both images,
/// so the guest cannot outrun the copy).
public struct MirrorConvergence: Sendable {
    /// How long a job may go without progress before it switches.
    public let stallAfter: Duration
    /// Progress that counts: what is left falls by at least this fraction of its best so far…
    public static let stepFraction = 0.05
    /// …or by at least this many bytes, whichever is smaller.
    public static let stepBytes: UInt64 = 1 << 20

    private var best: [String: (remaining: UInt64, at: Duration)] = [:]
    /// Jobs already in write-blocking mode: never switched again.
    public private(set) var writeBlocking: Set<String> = []

    /// A detector that switches a job after `stallAfter` without progress.
    public init(stallAfter: Duration) { self.stallAfter = stallAfter }

    /// Takes the jobs' figures at `now` (time since the mirrors started) and returns the jobs to
    /// switch to write-blocking now (each once; the caller then calls `switched`).
    public mutating func observe(_ jobs: [BlockJobInfo], at now: Duration) -> [String] {
        var stalled: [String] = []
        for job in jobs where !job.ready && !writeBlocking.contains(job.device) {
            let remaining = job.len > job.offset ? job.len - job.offset : 0
            guard let previous = best[job.device] else {
                best[job.device] = (remaining, now)
                continue
            }
            let step = min(Self.stepBytes, UInt64(Double(previous.remaining) * Self.stepFraction))
            if remaining + max(step, 1) <= previous.remaining {
                best[job.device] = (remaining, now)
            } else if now - previous.at >= stallAfter {
                stalled.append(job.device)
            }
        }
        return stalled
    }

    /// `job` now runs in write-blocking mode.
    public mutating func switched(_ job: String) {
        writeBlocking.insert(job)
        best[job] = nil
    }
}
