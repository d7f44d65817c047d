public import MeshTime

/// Restart in place (Protocol.md §9.1): the decisions of a VM's owner when the VM's QEMU dies
/// while it should run. A value type with no I/O and no clock: every event carries `now`.
///
/// Invariant: a restart is journaled (new epoch, count, reason) before anything starts, so the
/// epoch the dead copy ran at is stale before a new copy exists; at most `settings.limit`
/// restarts happen within `settings.window`, each after a growing backoff; past the limit the
/// VM stays down (`giveUp`) with the reason.
///
/// A shell drives it like this:
/// 1. When it sees the VM's QEMU gone without having been asked (not stopped, migrated away,
///    fenced or held), it calls `handle(.qemuExited(reason, epoch:, now:))`.
/// 2. It calls `handle(.timerFired(now:))` periodically (a timer never needs cancelling: the
///    core ignores it unless a backoff ended).
/// 3. It carries out the directives in order and reports each result as an event.
public struct RestartCore: Sendable, Equatable {
    /// Where the VM is in its restart cycle.
    public enum State: Sendable, Equatable {
        /// Running as far as the core knows (or never seen to fail).
        case running
        /// Its QEMU died at `epoch`; the restart is due at `until`.
        case backingOff(until: MeshInstant, epoch: Int64, reason: RestartExit)
        /// The restart's journal write is under way.
        case journaling(RestartRecord)
        /// QEMU is being started at the journaled epoch.
        case starting(RestartRecord)
        /// Gave up; `reason` says why.
        case failed(reason: String)
        /// The VM was stopped, migrated away or held meanwhile: nothing to do.
        case withdrawn
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// The VM's QEMU is gone though nobody asked; the VM's row is at `epoch`.
        case qemuExited(RestartExit, epoch: Int64, now: MeshInstant)
        /// Periodic tick.
        case timerFired(now: MeshInstant)
        /// The `journal` directive's write is durable.
        case journaled(now: MeshInstant)
        /// The `journal` directive's write failed (`why`): fail closed, nothing starts.
        case journalFailed(String)
        /// The VM's row no longer wants this restart (stopped, migrated, held, epoch moved).
        case withdrawn
        /// The `start` directive's QEMU runs.
        case started(now: MeshInstant)
        /// The `start` directive's QEMU did not come up.
        case startFailed(String, now: MeshInstant)
    }

    /// Limits and backoff.
    public let settings: RestartSettings
    /// The current state.
    public private(set) var state: State = .running
    /// When each journaled restart happened, oldest first (only those within the window matter).
    public private(set) var restarts: [MeshInstant] = []
    /// Restarts journaled by this core in total.
    public private(set) var count = 0

    /// A core for one VM that runs.
    public init(settings: RestartSettings) {
        precondition(settings.limit >= 1, "RestartSettings.limit is validated by the configuration") // programmer error otherwise
        self.settings = settings
    }

    /// Whether the core has nothing more to do (the shell MAY drop it).
    public var isFinished: Bool {
        switch state {
        case .failed, .withdrawn: return true
        case .running, .backingOff, .journaling, .starting: return false
        }
    }

    /// Handles one event; returns the directives to carry out, in order.
    public mutating func handle(_ event: Event) -> [RestartDirective] {
        switch (state, event) {
        case let (.running, .qemuExited(reason, epoch, now)):
            return exited(reason, epoch: epoch, now: now)
        case let (.backingOff(until, epoch, reason), .timerFired(now)):
            guard now >= until else { return [] }
            count += 1
            let record = RestartRecord(previousEpoch: epoch, epoch: epoch + 1, count: count, reason: reason)
            state = .journaling(record)
            return [.journal(record)]
        case let (.journaling(record), .journaled(now)):
            restarts.append(now)
            state = .starting(record)
            return [.start(epoch: record.epoch)]
        case let (.journaling(record), .journalFailed(why)):
            count -= 1
            return giveUp("cannot journal restart \(record.count) (\(why)); nothing was started, since a restart must be journaled first. "
                          + "Fix the agent's store, then `hostmesh vm start`")
        case (.journaling, .withdrawn), (.backingOff, .withdrawn), (.running, .withdrawn):
            state = .withdrawn
            return []
        case (.starting, .started):
            state = .running
            return []
        case let (.starting(record), .startFailed(why, now)):
            // The journaled epoch is the VM's now: a further restart advances from it.
            state = .running
            return exited(.startFailed(why), epoch: record.epoch, now: now)
        case (.starting, .withdrawn):
            state = .withdrawn
            return []
        default:
            // Events that do not apply in this state (a tick while running, a second exit report
            // while backing off, anything after giving up) change nothing.
            return []
        }
    }

    private mutating func exited(_ reason: RestartExit, epoch: Int64, now: MeshInstant) -> [RestartDirective] {
        restarts.removeAll { now - $0 >= settings.window }
        guard restarts.count < settings.limit else {
            return giveUp("\(reason); not restarted: \(restarts.count) restarts within \(Self.text(settings.window)) already (limit \(settings.limit)). "
                          + "Find the cause in `hostmesh vm console-log` and the QEMU log, then `hostmesh vm start`")
        }
        state = .backingOff(until: now + settings.backoff(afterRecentRestarts: restarts.count), epoch: epoch, reason: reason)
        return []
    }

    private mutating func giveUp(_ reason: String) -> [RestartDirective] {
        state = .failed(reason: reason)
        return [.giveUp(reason: reason)]
    }

    static func text(_ duration: Duration) -> String {
        let seconds = duration.components.seconds
        return seconds % 60 == 0 && seconds >= 60 ? "\(seconds / 60) min" : "\(seconds) s"
    }
}
