import MeshTime

/// Decides which drops are logged: at most one line per reason per interval, each line saying
/// how many drops of that reason went unlogged since the previous one.
struct DropLogLimiter: Sendable {
    /// Minimum time between two lines of the same reason.
    let interval: Duration
    private var lastLogged: [GossipDropReason: MeshInstant] = [:]
    private var suppressed: [GossipDropReason: UInt64] = [:]

    init(interval: Duration) {
        self.interval = interval
    }

    /// Records a drop at `now`. Returns nil if it must not be logged, else the number of drops
    /// of that reason suppressed since the last line.
    mutating func record(_ reason: GossipDropReason, now: MeshInstant) -> UInt64? {
        if let last = lastLogged[reason], now - last < interval {
            suppressed[reason, default: 0] += 1
            return nil
        }
        lastLogged[reason] = now
        return suppressed.removeValue(forKey: reason) ?? 0
    }
}
