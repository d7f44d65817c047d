/// The timings of VM leases on shared storage (Protocol.md §9.2), and the inequality that makes
/// a takeover safe: an owner that cannot renew has killed its copy before any other host may
/// claim the VM.
public struct LeaseSettings: Sendable, Equatable {
    /// How often the owner renews (writes its lease file). Default 1 s.
    public var renewInterval: Duration
    /// The owner kills its copies when no renewal *started* within this long has completed
    /// (measured on its own clock from that renewal's start). Default 4 s.
    public var fenceAfter: Duration
    /// How often cores are ticked: an owner notices the fence deadline at most this late. Default 250 ms.
    public var tickInterval: Duration
    /// The longest the owner takes to kill a copy once it decided to (SIGKILL and reap). Default 1 s.
    public var killBound: Duration
    /// Worst relative clock-rate error between any two hosts' monotonic clocks, in parts per
    /// million. Default 10,000 (1 %), far above what NTP-disciplined clocks show.
    public var driftPPM: Int64
    /// Another host may claim the VM only after its lease file showed the same content for this
    /// long on that host's clock (and membership says the owner is dead). Default 8 s.
    public var expiry: Duration

    /// The defaults stated on each field, or the given values.
    public init(renewInterval: Duration = .seconds(1), fenceAfter: Duration = .seconds(4), tickInterval: Duration = .milliseconds(250),
                killBound: Duration = .seconds(1), driftPPM: Int64 = 10_000, expiry: Duration = .seconds(8)) {
        self.renewInterval = renewInterval
        self.fenceAfter = fenceAfter
        self.tickInterval = tickInterval
        self.killBound = killBound
        self.driftPPM = driftPPM
        self.expiry = expiry
    }

    /// The latest moment, after the start of its last completed renewal, by which an owner that
    /// renews no more has killed its copy, in real time: (fenceAfter + tickInterval) on a clock
    /// that may run slow by `driftPPM`, plus `killBound`.
    public var fencedWithin: Duration {
        (fenceAfter + tickInterval) * Double(1_000_000 + driftPPM) / 1_000_000 + killBound
    }

    /// The earliest moment, in real time, at which a taker's `expiry` can have passed on a clock
    /// that may run fast by `driftPPM`.
    public var expiresNoSoonerThan: Duration {
        expiry * Double(1_000_000) / Double(1_000_000 + driftPPM)
    }

    /// Whether the timings are safe: `expiresNoSoonerThan > fencedWithin`, and a renewal has room
    /// to succeed before the fence deadline.
    public var isSafe: Bool { expiresNoSoonerThan > fencedWithin && renewInterval * 2 <= fenceAfter }

    /// Checks `isSafe`, naming the inequality that fails and the fix.
    public func validate() throws(LeaseSettingsError) {
        guard renewInterval * 2 <= fenceAfter else { throw .renewTooSlow(renewInterval: renewInterval, fenceAfter: fenceAfter) }
        guard expiresNoSoonerThan > fencedWithin else { throw .expiryTooShort(expiry: expiry, mustExceed: fencedWithin) }
    }
}

/// Lease timings that could let a taker claim a VM whose owner still runs it.
public enum LeaseSettingsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Fewer than two renewals fit in the fence time.
    case renewTooSlow(renewInterval: Duration, fenceAfter: Duration)
    /// The expiry does not exceed the time an owner takes to fence itself.
    case expiryTooShort(expiry: Duration, mustExceed: Duration)

    public var description: String {
        switch self {
        case let .renewTooSlow(renew, fence):
            return "a lease renewed every \(renew) with a fence time of \(fence) fences on a single slow write: make the fence time at least twice the renew interval"
        case let .expiryTooShort(expiry, bound):
            return "a lease expiry of \(expiry) could let another host start a VM whose owner is still killing its copy (it may take \(bound)): raise the expiry above that, with drift"
        }
    }
}
