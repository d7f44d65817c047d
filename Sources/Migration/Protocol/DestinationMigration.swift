/// The destination side of a migration as a pure state machine (Protocol.md §6.4).
/// `DestinationExecutor` carries the directives out in order and MUST finish each `.journal`
/// directive durably before the directives after it; when that write fails it feeds
/// `.journalFailed`, and what follows is this machine's decision, not the shell's.
///
/// The invariant it keeps: the guest runs here only after a commit from the migration's source
/// has been journaled here, together with the VM's new ownership epoch; and once this side has
/// told the source it discarded its copy (or never heard of the migration), it never accepts
/// that commit later.
public struct DestinationMigration: Sendable, Equatable {
    /// Where the migration stands; journaled on every change.
    public enum Phase: String, Sendable, Codable, CaseIterable {
        /// Admitted: capacity reserved, QEMU waiting for the stream (paused, `-S`).
        case admitted
        /// The commit arrived and the new ownership epoch is journaled: the guest is ours.
        case committed
        /// The guest runs here.
        case running
        /// Discarded: no copy here, and a late commit is refused.
        case discarded
    }

    /// What this side tells a source that asks about a migration (after a restart or when in doubt).
    public enum Verdict: Sendable, Equatable {
        /// Never admitted here (or forgotten): treat as discarded; nothing will run here.
        case unknown
        /// Admitted and still waiting for the commit, or committed and not yet resumed: no answer
        /// yet; ask again later.
        case receiving
        /// The guest runs here (resumed after the commit); final.
        case committed
        /// The copy here was discarded, for this reason.
        case discarded(String)
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// The source asked to migrate; `accept` is the admission decision (nil) or the refusal.
        case prepare(refusal: String?)
        /// QEMU here is ready to receive (listening on its incoming socket).
        case ready
        /// QEMU here could not be started or made to listen (or the ports not imported).
        case launchFailed(String)
        /// The source committed; `loaded` says whether QEMU has the whole guest (or is in post-copy).
        case commit(loaded: Bool)
        /// QEMU here runs the guest.
        case resumed
        /// The source aborted, or its channel ended before commit, or QEMU here failed before the
        /// commit. After the commit it changes nothing: the guest is this host's.
        case abort(String)
        /// After the commit was journaled, the guest could not be resumed here (QEMU died or
        /// refused `cont`, or the commit could not be written): the copy here is discarded, with
        /// the VM row the commit wrote, before the source is told, so that it takes the guest back.
        case resumeFailed(String)
        /// The source asks what this side knows.
        case query
        /// The agent restarted and found this migration in its journal; `qemuAlive` says
        /// whether this migration's QEMU is still running.
        case recovered(qemuAlive: Bool)
        /// The `.journal` directive just carried out could not be written durably. The
        /// directives queued after it were not carried out; the ones returned replace them.
        case journalFailed(String)
    }

    /// What to do.
    public enum Directive: Sendable, Equatable {
        /// Persist the phase (and, for `committed`, the VM's new owner and epoch) before anything after it.
        case journal(Phase)
        /// Reserve capacity and start QEMU waiting for the incoming stream; reports `.ready` or
        /// `.launchFailed`.
        case launchIncoming
        /// Answer the prepare: nil means admitted.
        case replyPrepared(refusal: String?)
        /// Resume the guest (QEMU `cont`); reports `.resumed` or `.resumeFailed`.
        case resume
        /// Answer the commit: nil means the guest runs here.
        case replyCommitted(error: String?)
        /// Kill this migration's QEMU and release the reservation (and, after a commit, forget the
        /// VM row it wrote: the shell deletes it in the same transaction as the `discarded` phase).
        case discard
        /// Answer a query.
        case replyVerdict(Verdict)
    }

    /// Migration id.
    public let id: String
    /// Current phase (nil before admission).
    public private(set) var phase: Phase?
    private var discardReason = ""
    /// The directives that followed the last `.journal` directive: what to carry out anyway if
    /// that write fails in a phase where going on is safe.
    private var afterJournal: [Directive] = []
    /// The guest runs here but `running` could not be journaled yet.
    private var runningUnrecorded = false

    /// A migration the source just asked for.
    public init(id: String) { self.id = id }

    /// A migration read back from the journal.
    public init(id: String, journaled phase: Phase, reason: String = "") {
        self.id = id
        self.phase = phase
        discardReason = reason
    }

    /// Feeds one event; returns what to do, in order.
    public mutating func handle(_ event: Event) -> [Directive] {
        switch (phase, event) {
        case (nil, .prepare(let refusal?)):
            return [.replyPrepared(refusal: refusal)]
        case (nil, .prepare(nil)):
            return move(.admitted, then: [.launchIncoming])
        case (.admitted, .ready):
            return [.replyPrepared(refusal: nil)]
        case (.admitted, .launchFailed(let why)):
            let reason = "cannot start the destination QEMU: \(why)"
            return discard(reason, answer: .replyPrepared(refusal: reason))
        case (.admitted, .journalFailed(let why)):
            // The admission was not recorded: refuse it. Nothing was created but the reservation.
            phase = .discarded
            discardReason = "cannot journal the admission: \(why)"
            return [.discard, .replyPrepared(refusal: discardReason)]
        case (.committed, .journalFailed(let why)):
            // The commit was not recorded, so the guest must not run here: discard, and the
            // source, told so, takes its copy back.
            let reason = "cannot journal the commit: \(why)"
            return discard(reason, answer: .replyCommitted(error: "discarded: \(reason)"))
        case (.running, .journalFailed):
            // The guest runs here, but only `committed` is on disk: a restart that found QEMU dead
            // would discard it, so `committed` must not be promised yet. No answer: the source
            // goes in doubt and asks, and each query tries the write again.
            phase = .committed
            runningUnrecorded = true
            return []
        case (.committed, .query) where runningUnrecorded:
            runningUnrecorded = false
            return move(.running, then: [.replyVerdict(.committed)])
        case (.discarded, .journalFailed):
            // The copy of a discard is killed all the same, and the answer given: the source
            // takes the guest back, and a restart finds nothing to run (or discards it again).
            defer { afterJournal = [] }
            return afterJournal
        case (.admitted, .commit(loaded: true)):
            // Ownership first: once journaled, a crash before `cont` resumes here on recovery.
            return move(.committed, then: [.resume])
        case (.admitted, .commit(loaded: false)):
            let reason = "the commit arrived before the guest had loaded"
            return discard(reason, answer: .replyCommitted(error: reason))
        case (.committed, .resumed):
            return move(.running, then: [.replyCommitted(error: nil)])
        case (.committed, .abort):
            // The guest is ours: a late abort or the channel's end changes nothing.
            return []
        case (.committed, .resumeFailed(let why)):
            // Nothing ran here and the source has not been answered: discard (journaled first),
            // then tell the source, which resumes its copy above this commit's epoch.
            let reason = "resume failed after commit: \(why)"
            return discard(reason, answer: .replyCommitted(error: "discarded: \(reason)"))
        case (.admitted, .abort(let why)):
            return discard(why)
        case (nil, .commit), (.discarded, .commit):
            return [.replyCommitted(error: discardReason.isEmpty ? "unknown migration" : "discarded: \(discardReason)")]
        case (_, .query):
            return [.replyVerdict(verdict)]
        case (.admitted, .recovered):
            // The stream died with the agent: discard, whatever QEMU loaded.
            return discard("the destination agent restarted before the commit")
        case (.committed, .recovered(qemuAlive: true)):
            return [.resume]
        case (.committed, .recovered(qemuAlive: false)):
            // Nothing ran here (the agent died before `cont` and QEMU with it): the shell deletes
            // the VM row with the phase, and the source, when it asks, takes the guest back. What
            // the dead copy left (its runtime directory, disk images it received) goes too.
            discardReason = "the destination QEMU died before resuming the guest"
            return move(.discarded, then: [.discard])
        default:
            return []
        }
    }

    /// What this side would tell the source now. `committed` only once the guest runs here: a
    /// commit that is journaled but not yet resumed can still fail (QEMU dies before `cont`) and
    /// be discarded, which a source that had heard `committed` would never learn after releasing
    /// its copy. Until then the answer is `receiving`, and the source's abort changes nothing.
    public var verdict: Verdict {
        switch phase {
        case nil: return .unknown
        case .admitted?, .committed?: return .receiving
        case .running?: return .committed
        case .discarded?: return .discarded(discardReason)
        }
    }

    private mutating func move(_ next: Phase, then rest: [Directive]) -> [Directive] {
        phase = next
        afterJournal = rest
        return [.journal(next)] + rest
    }

    /// Journals the discard, then kills the copy and gives the answer owed, if any: both are
    /// carried out even if the journal write fails.
    private mutating func discard(_ why: String, answer: Directive? = nil) -> [Directive] {
        discardReason = why
        return move(.discarded, then: [.discard] + (answer.map { [$0] } ?? []))
    }
}
