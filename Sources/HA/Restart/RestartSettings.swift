/// How often and how fast a VM's owner restarts it in place (Protocol.md §9.1).
///
/// After the n-th restart within `window` (n counted from 0), the next one waits
/// `firstBackoff * 2^n`, at most `maxBackoff`; once `limit` restarts happened within `window`,
/// the next unexpected exit is not restarted: the VM stays failed and says why.
public struct RestartSettings: Sendable, Equatable {
    /// Restarts allowed within `window` before giving up. Default 3; at least 1.
    public var limit: Int
    /// The window restarts are counted in. Default 10 minutes.
    public var window: Duration
    /// Wait before the first restart. Default 1 s.
    public var firstBackoff: Duration
    /// The longest wait before a restart. Default 60 s.
    public var maxBackoff: Duration

    /// The defaults stated on each field, or the given values.
    public init(limit: Int = 3, window: Duration = .seconds(600), firstBackoff: Duration = .seconds(1),
                maxBackoff: Duration = .seconds(60)) {
        self.limit = limit
        self.window = window
        self.firstBackoff = firstBackoff
        self.maxBackoff = maxBackoff
    }

    /// The wait before a restart when `recent` restarts already happened within the window.
    public func backoff(afterRecentRestarts recent: Int) -> Duration {
        var wait = firstBackoff
        for _ in 0..<min(max(recent, 0), 32) where wait < maxBackoff { wait = wait * 2 }
        return min(wait, maxBackoff)
    }
}
