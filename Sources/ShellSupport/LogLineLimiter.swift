public import MeshTime
import NIOConcurrencyHelpers

/// Decides which of many repeated events are logged: at most one line per reason per
/// interval, each line saying how many events of that reason went unlogged since the previous
/// one. A flood of refused connections (or dropped datagrams) then costs a few lines, not a
/// line each: without it, an attacker turns every refusal into disk writes (issue 19, finding 5).
/// Pure: time is passed in. The gossip shell's `DropLogLimiter` is the same idea for its drops.
public struct LogLineLimiter<Reason: Hashable & Sendable>: Sendable {
    /// Minimum time between two lines of the same reason.
    public let interval: Duration
    private var lastLogged: [Reason: MeshInstant] = [:]
    private var suppressed: [Reason: UInt64] = [:]

    /// A limiter allowing one line per reason per `interval` (10 s, like the gossip drops).
    public init(interval: Duration = .seconds(10)) {
        self.interval = interval
    }

    /// Records one event at `now`. Returns nil if it must not be logged, else the number of
    /// events of that reason suppressed since the last line.
    public mutating func record(_ reason: Reason, now: MeshInstant) -> UInt64? {
        if let last = lastLogged[reason], now - last < interval {
            suppressed[reason, default: 0] += 1
            return nil
        }
        lastLogged[reason] = now
        return suppressed.removeValue(forKey: reason) ?? 0
    }
}

/// A `LogLineLimiter` shared by the connections of one listener, which run on several event
/// loops; reads the shell clock itself.
public final class SharedLogLineLimiter<Reason: Hashable & Sendable>: Sendable {
    private let limiter: NIOLockedValueBox<LogLineLimiter<Reason>>

    /// One line per reason per `interval`.
    public init(interval: Duration = .seconds(10)) {
        limiter = NIOLockedValueBox(LogLineLimiter(interval: interval))
    }

    /// Records one event now; nil if it must not be logged, else the count suppressed before it.
    public func record(_ reason: Reason) -> UInt64? {
        let now = ShellTimeline().now()
        return limiter.withLockedValue { $0.record(reason, now: now) }
    }
}
