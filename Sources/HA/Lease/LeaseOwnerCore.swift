public import MeshTime

/// A host's side of its own lease file for a VM on shared storage (Protocol.md §9.2): renew while
/// a copy of the VM may run here, and kill the copy before the lease can have expired for anyone
/// else.
///
/// Invariant: if no renewal that started at `s` has completed, the core says `fence` by
/// `s + fenceAfter` (on the owner's clock, at the first tick after it): the shell kills the copy
/// within `killBound`. A taker claims only after `expiry` without seeing the lease change, and
/// `LeaseSettings.isSafe` makes that later than the kill (the argument is in Protocol.md §9.2).
///
/// The shell ticks it every `tickInterval`; carries out `renew` as one write of the lease file
/// (owner, epoch, `counter`) and reports `renewed(startedAt:)` with the time the write was
/// *issued*, or `renewFailed`; carries out `fence` by killing the VM's copy on this host at once.
public struct LeaseOwnerCore: Sendable, Equatable {
    /// Where the lease is.
    public enum State: Sendable, Equatable {
        /// Held; the last renewal that completed was issued at `lastGood`.
        case holding(lastGood: MeshInstant)
        /// The copy must be (and, once the shell carried out `fence`, is) dead; this core renews no more.
        case fenced(reason: String)
        /// The VM stopped or moved away on purpose; nothing to renew.
        case released
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// Periodic tick.
        case tick(now: MeshInstant)
        /// The renewal issued at `startedAt` is on the storage.
        case renewed(startedAt: MeshInstant)
        /// A renewal failed (I/O error, timeout, storage gone).
        case renewFailed(why: String, now: MeshInstant)
        /// A claim file on the storage shows another host took the VM over at a higher epoch.
        /// (Another host's lease file does not: a handover's destination holds its own.)
        case superseded(owner: String, epoch: Int64)
        /// The VM stopped or migrated away on purpose (its lease is released by the shell).
        case released
        /// Renew at once rather than at the next interval (the shell changed what the lease
        /// says, e.g. a migration's destination becoming the owner at the commit); if a renewal
        /// is in flight, the next tick after it completes renews.
        case renewNow(now: MeshInstant)
    }

    /// What the shell MUST do, in order.
    public enum Directive: Sendable, Equatable {
        /// Write the lease file with counter `counter` (and this host, this epoch); report the result.
        case renew(counter: UInt64)
        /// Kill this host's copy of the VM now (SIGKILL; not a graceful stop): it may no longer
        /// run. Also journal why, so the VM is not restarted here without a new claim.
        case fence(reason: String)
    }

    /// The timings.
    public let settings: LeaseSettings
    /// The lease's epoch (the VM's ownership epoch).
    public let epoch: Int64
    /// The state.
    public private(set) var state: State
    /// The last counter issued.
    public private(set) var counter: UInt64
    /// When the last renewal was issued, and whether it is still in flight.
    private var lastIssued: MeshInstant
    private var inFlight = false
    private var renewSoon = false

    /// A lease just acquired: its first write (counter `counter`), issued at `now`, is on the storage.
    public init(settings: LeaseSettings, epoch: Int64, counter: UInt64 = 0, acquiredAt now: MeshInstant) {
        self.settings = settings
        self.epoch = epoch
        self.counter = counter
        state = .holding(lastGood: now)
        lastIssued = now
    }

    /// Handles one event; returns the directives.
    public mutating func handle(_ event: Event) -> [Directive] {
        guard case let .holding(lastGood) = state else { return [] } // fenced and released are final
        switch event {
        case let .tick(now):
            if now - lastGood >= settings.fenceAfter {
                return fence("no lease renewal completed for \(now - lastGood) (limit \(settings.fenceAfter)): the storage may be cut off, "
                             + "and another host may take the VM over once the lease expires")
            }
            guard !inFlight, renewSoon || now - lastIssued >= settings.renewInterval else { return [] }
            return issue(now)
        case let .renewNow(now):
            guard !inFlight else {
                renewSoon = true
                return []
            }
            return issue(now)
        case let .renewed(startedAt):
            inFlight = false
            state = .holding(lastGood: max(lastGood, startedAt))
            return []
        case .renewFailed:
            inFlight = false
            return []
        case let .superseded(owner, epoch):
            return fence("\(owner) holds the VM at epoch \(epoch), above this copy's \(self.epoch)")
        case .released:
            state = .released
            return []
        }
    }

    private mutating func issue(_ now: MeshInstant) -> [Directive] {
        inFlight = true
        renewSoon = false
        lastIssued = now
        counter += 1
        return [.renew(counter: counter)]
    }

    private mutating func fence(_ reason: String) -> [Directive] {
        state = .fenced(reason: reason)
        return [.fence(reason: reason)]
    }
}
