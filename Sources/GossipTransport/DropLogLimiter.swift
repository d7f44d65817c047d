/// Decides which drops are logged: at most one line per reason per interval, each line saying
/// how many drops of that reason went unlogged since the previous one.
struct DropLogLimiter: Sendable {
    /// Minimum time between two lines of the same reason, in nanoseconds.
    let intervalNanoseconds: Int64
    private var lastLogged: [GossipDropReason: Int64] = [:]
    private var suppressed: [GossipDropReason: UInt64] = [:]

    init(interval: Duration) {
        let (seconds, attoseconds) = interval.components
        intervalNanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Records a drop at `now` (nanoseconds on any monotonic timeline). Returns nil if it must
    /// not be logged, else the number of drops of that reason suppressed since the last line.
    mutating func record(_ reason: GossipDropReason, now: Int64) -> UInt64? {
        if let last = lastLogged[reason], now - last < intervalNanoseconds {
            suppressed[reason, default: 0] += 1
            return nil
        }
        lastLogged[reason] = now
        return suppressed.removeValue(forKey: reason) ?? 0
    }
}
