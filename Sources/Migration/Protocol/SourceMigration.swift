/// The source side of a migration as a pure state machine (Protocol.md §6.4): events in,
/// directives out, no I/O. The shell MUST carry out directives in order, and MUST finish a
/// `.journal` directive (durably) before the ones after it.
///
/// The invariant it keeps: once the source may have told the destination to run the guest
/// (`committing` and later), it never resumes its own copy unless the destination has said it
/// discarded its copy. Before that point the source may always resume: the destination runs
/// nothing without a commit.
public struct SourceMigration: Sendable, Equatable {
    /// Where the migration stands; journaled on every change.
    public enum Phase: String, Sendable, Codable, CaseIterable {
        /// Asked the destination to admit the VM.
        case requested
        /// The destination admitted it and waits for the stream.
        case admitted
        /// QEMU is sending the guest.
        case transferring
        /// The guest is stopped here for good and the commit may be on its way: from here on the
        /// source never resumes unless the destination reports that it discarded its copy.
        case committing
        /// The destination runs the guest; the source has not yet released its copy.
        case committed
        /// Released: nothing of the VM remains here.
        case done
        /// Given up before commit; the guest runs here.
        case aborted
        /// The commit may have reached the destination, but no answer came: the guest stays
        /// paused here until the destination is asked again or an operator resolves it.
        case inDoubt
    }

    /// What happened.
    public enum Event: Sendable, Equatable {
        /// The operator asked for the migration.
        case start
        /// The destination admitted the VM.
        case admitted
        /// The destination refused the VM.
        case refused(String)
        /// QEMU finished sending (pre-copy completed) or entered post-copy: the guest is stopped here for good.
        case transferCompleted
        /// QEMU's migration failed or was cancelled: the guest runs here.
        case transferFailed(String)
        /// The destination confirmed it runs the guest.
        case committed
        /// The destination answered the commit with an error: it has discarded its copy.
        case commitRefused(String)
        /// The channel to the destination ended or timed out.
        case peerLost(String)
        /// After a restart, or when resolving: the destination's answer about this migration.
        case peerReports(DestinationMigration.Verdict)
        /// The agent restarted and found this migration in its journal.
        case recovered
        /// The local copy has been released.
        case released
        /// The phase just entered could not be journaled, so nothing it leads to may be done (the
        /// next directive, such as the commit, was not carried out).
        case journalFailed(String)
    }

    /// What to do.
    public enum Directive: Sendable, Equatable {
        /// Persist the phase durably before anything that follows.
        case journal(Phase)
        /// Ask the destination to admit the VM.
        case sendPrepare
        /// Start QEMU's outgoing migration into the tunnel.
        case startTransfer
        /// Tell the destination to run the guest.
        case sendCommit
        /// Tell the destination to discard its copy (best effort).
        case sendAbort(String)
        /// Ask the destination what it knows about this migration.
        case queryPeer
        /// Take the VM back here at the migration's epoch + 2, durably, clearing any hold: above
        /// any epoch the destination may have journaled. Comes before `resumeLocal` whenever the
        /// source resumes after having journaled `committing` (Protocol.md §6.4).
        case reclaim
        /// Make sure the guest runs here (QEMU `cont` if it is paused).
        case resumeLocal
        /// Leave the guest paused here.
        case keepPaused
        /// Quit the local QEMU and forget the VM: it lives on the destination.
        case releaseLocal
        /// The migration ended: the guest runs on the destination.
        case succeeded
        /// The migration ended without moving the guest (or in doubt): why, and where the guest is.
        case failed(Failure)
    }

    /// Why a migration did not complete, and where the guest is.
    public struct Failure: Error, Sendable, Equatable {
        /// What went wrong.
        public var reason: String
        /// Where the guest is: "source", "destination", or "in doubt".
        public var guest: String
    }

    /// Migration id.
    public let id: String
    /// Current phase.
    public private(set) var phase: Phase

    /// A new migration, before `start`.
    public init(id: String) {
        self.id = id
        phase = .requested
    }

    /// A migration read back from the journal.
    public init(id: String, journaled phase: Phase) {
        self.id = id
        self.phase = phase
    }

    /// Feeds one event; returns what to do, in order.
    public mutating func handle(_ event: Event) -> [Directive] {
        switch (phase, event) {
        case (.requested, .start):
            return [.journal(.requested), .sendPrepare]
        case (.requested, .admitted):
            return move(.admitted) + [.startTransfer]
        case (.requested, .refused(let why)), (.requested, .peerLost(let why)):
            return abort(why, tellPeer: false)
        case (.admitted, .transferFailed(let why)), (.admitted, .peerLost(let why)),
             (.transferring, .transferFailed(let why)), (.transferring, .peerLost(let why)):
            return abort(why, tellPeer: true)
        case (.admitted, .transferCompleted), (.transferring, .transferCompleted):
            // Journal first: after this line the source never takes the guest back on its own.
            return move(.committing) + [.sendCommit]
        case (.committing, .committed), (.inDoubt, .peerReports(.committed)):
            return move(.committed) + [.releaseLocal]
        case (.committing, .commitRefused(let why)), (.inDoubt, .peerReports(.discarded(let why))):
            return takeBack("destination discarded the guest: \(why)")
        case (.committing, .peerLost(let why)):
            return move(.inDoubt) + [.keepPaused,
                                     .failed(Failure(reason: "handover in doubt: \(why)", guest: "in doubt"))]
        case (.inDoubt, .peerReports(.unknown)):
            // The destination never heard of it and has fenced it: a late commit is refused.
            return takeBack("destination never received the guest")
        case (.inDoubt, .peerReports(.receiving)):
            // It still waits for a commit that will not come from us without a decision: abort it.
            return [.sendAbort("source resolved an in-doubt handover"), .queryPeer]
        case (.committed, .released):
            return move(.done) + [.succeeded]
        // Recovery after a restart: the tunnel and QEMU's outgoing migration died with the agent.
        case (.requested, .recovered), (.admitted, .recovered), (.transferring, .recovered):
            return abort("the source agent restarted during the migration", tellPeer: true)
        case (.committing, .recovered), (.inDoubt, .recovered):
            return move(.inDoubt) + [.keepPaused, .queryPeer]
        case (.committed, .recovered):
            return [.releaseLocal]
        case (.admitted, .admitted), (.transferring, .admitted):
            return []
        // Journal before acting: a phase that could not be recorded is not acted on. Up to
        // `committing` the commit has not been sent, so the destination cannot run the guest.
        case (.requested, .journalFailed(let why)), (.admitted, .journalFailed(let why)),
             (.transferring, .journalFailed(let why)), (.committing, .journalFailed(let why)):
            return abort("cannot write the migration journal: \(why)", tellPeer: true)
        default:
            return []
        }
    }

    /// Marks QEMU's transfer as started (journaled, so recovery knows a stream may have flowed).
    public mutating func transferStarted() -> [Directive] {
        guard phase == .admitted else { return [] }
        return move(.transferring)
    }

    private mutating func move(_ next: Phase) -> [Directive] {
        phase = next
        return [.journal(next)]
    }

    /// Back to the source after `committing`: the epoch moves past the destination's first,
    /// and only then the phase ends and the guest resumes. A crash between the two writes
    /// leaves `committing`/`inDoubt` in the journal; recovery asks again and reclaims at the same
    /// epoch (it is computed from the migration's, not the VM's).
    private mutating func takeBack(_ why: String) -> [Directive] {
        phase = .aborted
        return [.reclaim, .journal(.aborted), .resumeLocal, .failed(Failure(reason: why, guest: "source"))]
    }

    /// Before `committing` the destination cannot run the guest: resume at the same epoch.
    private mutating func abort(_ why: String, tellPeer: Bool) -> [Directive] {
        let tell: [Directive] = tellPeer ? [.sendAbort(why)] : []
        return move(.aborted) + tell + [.resumeLocal, .failed(Failure(reason: why, guest: "source"))]
    }
}
