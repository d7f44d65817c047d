/// The source side of a migration as a pure state machine (Protocol.md §6.4): events in,
/// directives out, no I/O. `SourceExecutor` carries the directives out in order and MUST finish
/// a `.journal` directive (durably) before the ones after it; when that write fails it feeds
/// `.journalFailed`, and what follows is this machine's decision, not the shell's.
///
/// The invariant it keeps: once the source may have told the destination to run the guest
/// (`committing` and later), it never resumes its own copy unless the destination has said it
/// discarded its copy, or an operator has said the destination is fenced. Before that point the
/// source may always resume: the destination runs nothing without a commit.
public struct SourceMigration: Sendable, Equatable {
    /// Where the migration stands; journaled on every change.
    public enum Phase: String, Sendable, Codable, CaseIterable {
        /// Asked the destination to admit the VM.
        case requested
        /// The destination admitted it and waits for the stream.
        case admitted
        /// The VM's local disks are being mirrored into the destination's new images (§6.7); the
        /// guest runs here on its own images, which stay authoritative.
        case mirroring
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
        /// The tunnel for QEMU's stream is open: QEMU may start sending.
        case transferReady
        /// Every disk mirror is synchronised (and keeps the destination's image in step).
        case mirrorsReady
        /// A disk mirror could not start or failed before it was synchronised: the guest runs here.
        case mirrorFailed(String)
        /// QEMU entered post-copy: the guest is stopped here for good and must run on the
        /// destination at once, while the remaining pages follow.
        case postcopyStarted
        /// QEMU finished sending (pre-copy completed): the guest is stopped here for good.
        case transferCompleted
        /// QEMU's migration failed or was cancelled (or the tunnel could not open): the guest runs here.
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
        /// The `.journal` directive just carried out could not be written durably. The
        /// directives queued after it were not carried out; the ones returned replace them.
        case journalFailed(String)
        /// The `.reclaim` directive could not be written: the epoch did not move, so the guest
        /// must not resume here.
        case reclaimFailed(String)
        /// The `.releaseLocal` directive could not be written: the guest runs on the destination
        /// and the copy here stays paused until it can be released.
        case releaseFailed(String)
        /// An operator, having checked that the destination is down for good, takes an in-doubt
        /// guest back (`vm resolve --resume-here --destination-fenced`).
        case operatorResumed
        /// An operator, having seen the guest run on the destination, releases the in-doubt copy
        /// (`vm resolve --release-here --destination-runs-it`).
        case operatorReleased
    }

    /// What to do.
    public enum Directive: Sendable, Equatable {
        /// Persist the phase durably before anything that follows.
        case journal(Phase)
        /// Ask the destination to admit the VM; reports `.admitted`, `.refused` or `.peerLost`.
        case sendPrepare
        /// Open the tunnel QEMU's stream goes through; reports `.transferReady` or `.transferFailed`.
        case openTransfer
        /// Mirror every local disk into the destination's image through the tunnel; reports
        /// `.mirrorsReady` or `.mirrorFailed`.
        case startMirrors
        /// Start QEMU's outgoing migration into the tunnel; reports `.transferCompleted`,
        /// `.postcopyStarted` (QEMU goes on sending) or `.transferFailed`. With mirrored disks the
        /// switchover completes the mirrors while the guest is paused, before QEMU sends the
        /// devices' state; a mirror that does not complete fails the transfer.
        case startTransfer
        /// Stop the disk mirrors and drop their NBD clients (best effort; nothing when there are
        /// none): the source images were never written by them and stay the guest's.
        case cancelMirrors
        /// Delete the source's copies of the mirrored disks: the destination runs the guest on its
        /// own, and the release is journaled. Only ever after `.releaseLocal` succeeded.
        case deleteSourceDisks
        /// Tell the destination to run the guest (with the ports' final state) and wait for its
        /// answer (after a post-copy transfer has finished); reports `.committed`,
        /// `.commitRefused` or `.peerLost`.
        case sendCommit
        /// Tell the destination to discard its copy (best effort).
        case sendAbort(String)
        /// Ask the destination what it knows about this migration; reports `.peerReports` or
        /// nothing when it does not answer.
        case queryPeer
        /// Take the VM back here at the migration's epoch + 2, durably, clearing any hold: above
        /// any epoch the destination may have journaled. Comes before `resumeLocal` whenever the
        /// source resumes after having journaled `committing` (Protocol.md §6.4). When it cannot
        /// be written, nothing after it is carried out: the guest stays paused.
        case reclaim
        /// Make sure the guest runs here (QEMU `cont` if it is paused).
        case resumeLocal
        /// Leave the guest paused here and hold the VM (durably, and in memory even if that write fails).
        case keepPaused
        /// Forget the VM here at the migration's epoch + 1 (durably) and quit the local QEMU: it
        /// lives on the destination. Reports `.released`; when the write fails, nothing.
        case releaseLocal
        /// The migration ended: the guest runs on the destination.
        case succeeded
        /// The migration ended without moving the guest (or in doubt): why, and where the guest is.
        case failed(Failure)
    }

    /// Where the guest is when a migration did not complete.
    public enum GuestLocation: String, Sendable, Equatable {
        /// It runs on the source (it never left, or was taken back).
        case source
        /// It runs on the destination.
        case destination
        /// Unknown: the handover is in doubt and the guest is paused on the source.
        case inDoubt = "in doubt"
    }

    /// Why a migration did not complete, and where the guest is.
    public struct Failure: Error, Sendable, Equatable {
        /// What went wrong.
        public var reason: String
        /// Where the guest is.
        public var guest: GuestLocation
    }

    /// What happens to the VM's local disks.
    public enum Disks: Sendable, Equatable {
        /// None to move: every disk is on shared storage (or there is none).
        case shared
        /// Mirrored to the destination; after the handover commits, the source's copies are kept
        /// (`keepSource`) or deleted.
        case mirrored(keepSource: Bool)
    }

    /// Migration id.
    public let id: String
    /// The VM's local disks.
    public let disks: Disks
    /// Current phase.
    public private(set) var phase: Phase
    /// The directives that followed the last `.journal` directive: what to carry out anyway if
    /// that write fails in a phase where going on is safe.
    private var afterJournal: [Directive] = []

    /// A new migration, before `start`.
    public init(id: String, disks: Disks = .shared) {
        self.id = id
        self.disks = disks
        phase = .requested
    }

    /// A migration read back from the journal. Recovery that cannot tell whether the source's
    /// copies may go passes `.mirrored(keepSource: true)`: they are kept.
    public init(id: String, journaled phase: Phase, disks: Disks = .shared) {
        self.id = id
        self.disks = disks
        self.phase = phase
    }

    private var mirrors: Bool { disks != .shared }

    /// Feeds one event; returns what to do, in order.
    public mutating func handle(_ event: Event) -> [Directive] {
        switch (phase, event) {
        case (.requested, .start):
            return move(.requested, then: [.sendPrepare])
        case (.requested, .admitted):
            return move(.admitted, then: [.openTransfer])
        case (.admitted, .transferReady) where mirrors:
            // Journaled before a mirror writes the destination's image: recovery then knows the
            // mirrors may exist and cancels them.
            return move(.mirroring, then: [.startMirrors])
        case (.admitted, .transferReady), (.mirroring, .mirrorsReady):
            // Journaled before QEMU sends a byte: recovery then knows a stream may have flowed.
            return move(.transferring, then: [.startTransfer])
        case (.requested, .refused(let why)), (.requested, .peerLost(let why)):
            return abort(why, tellPeer: false)
        case (.admitted, .transferFailed(let why)), (.admitted, .peerLost(let why)),
             (.mirroring, .mirrorFailed(let why)), (.mirroring, .transferFailed(let why)), (.mirroring, .peerLost(let why)),
             (.transferring, .transferFailed(let why)), (.transferring, .peerLost(let why)):
            return abort(why, tellPeer: true)
        case (.transferring, .transferCompleted), (.transferring, .postcopyStarted):
            // Journal first: after this line the source never takes the guest back on its own.
            return move(.committing, then: [.sendCommit])
        case (.committing, .committed), (.inDoubt, .peerReports(.committed)):
            return move(.committed, then: [.releaseLocal])
        case (.committing, .commitRefused(let why)), (.inDoubt, .peerReports(.discarded(let why))):
            return takeBack("destination discarded the guest: \(why)")
        case (.committing, .peerLost(let why)):
            return move(.inDoubt, then: [.keepPaused, .failed(Failure(reason: "handover in doubt: \(why)", guest: .inDoubt))])
        case (.inDoubt, .peerReports(.unknown)):
            // The destination never heard of it and has fenced it: a late commit is refused.
            return takeBack("destination never received the guest")
        case (.inDoubt, .peerReports(.receiving)):
            // It still waits for a commit that will not come from us without a decision: abort it.
            return [.sendAbort("source resolved an in-doubt handover"), .queryPeer]
        case (.inDoubt, .operatorResumed):
            return takeBack("an operator resumed the guest on the source (destination fenced)")
        case (.inDoubt, .operatorReleased):
            return move(.committed, then: [.releaseLocal])
        case (.committed, .released) where disks == .mirrored(keepSource: false):
            // The destination runs the guest on its own images and the release is durable: only
            // now may the source's copies go. Deleted before `done` is journaled, so a crash in
            // between leaves `committed`, whose recovery releases (and deletes) again.
            phase = .done
            afterJournal = [.succeeded]
            return [.deleteSourceDisks, .journal(.done), .succeeded]
        case (.committed, .released):
            return move(.done, then: [.succeeded])
        case (.aborted, .reclaimFailed(let why)):
            // The journal still says committing or in doubt: back to doubt, guest paused; the
            // retry loop asks again and reclaims then.
            return move(.inDoubt, then: [.keepPaused, .failed(Failure(
                reason: "cannot journal taking the guest back (\(why)); it stays paused here", guest: .inDoubt))])
        case (.committed, .releaseFailed(let why)):
            // The destination runs the guest: the copy here stays paused and held until the
            // retry loop (or a restart's recovery) releases it.
            return [.keepPaused, .failed(Failure(
                reason: "the guest runs on the destination, but releasing it here failed: \(why)", guest: .destination))]
        // Recovery after a restart: the tunnel and QEMU's outgoing migration died with the agent.
        case (.requested, .recovered), (.admitted, .recovered), (.mirroring, .recovered), (.transferring, .recovered):
            return abort("the source agent restarted during the migration", tellPeer: true)
        case (.committing, .recovered), (.inDoubt, .recovered):
            return move(.inDoubt, then: [.keepPaused, .queryPeer])
        case (.committed, .recovered):
            return [.releaseLocal]
        // Journal before acting: a phase that could not be recorded is not acted on. Up to
        // `committing` the commit has not been sent, so the destination cannot run the guest.
        case (.requested, .journalFailed(let why)), (.admitted, .journalFailed(let why)), (.mirroring, .journalFailed(let why)),
             (.transferring, .journalFailed(let why)), (.committing, .journalFailed(let why)):
            return abort("cannot write the migration journal: \(why)", tellPeer: phase != .requested)
        // Past `committing` nothing a missing record leads to is unsafe: the guest's owner is
        // settled by the destination's journal (committed) or by the hold and the reclaimed
        // epoch (in doubt, aborted), and recovery repeats whatever was lost. Go on.
        case (.committed, .journalFailed), (.done, .journalFailed), (.aborted, .journalFailed), (.inDoubt, .journalFailed):
            defer { afterJournal = [] }
            return afterJournal
        default:
            return []
        }
    }

    private mutating func move(_ next: Phase, then rest: [Directive]) -> [Directive] {
        phase = next
        afterJournal = rest
        return [.journal(next)] + rest
    }

    /// Back to the source after `committing`: the epoch moves past the destination's first,
    /// and only then the phase ends and the guest resumes. A crash between the two writes
    /// leaves `committing`/`inDoubt` in the journal; recovery asks again and reclaims at the same
    /// epoch (it is computed from the migration's, not the VM's).
    private mutating func takeBack(_ why: String) -> [Directive] {
        phase = .aborted
        afterJournal = [.resumeLocal, .failed(Failure(reason: why, guest: .source))]
        return [.reclaim, .journal(.aborted)] + afterJournal
    }

    /// Before `committing` the destination cannot run the guest: resume at the same epoch. The
    /// mirrors stop before the destination is told, so nothing writes its image once it discards it.
    private mutating func abort(_ why: String, tellPeer: Bool) -> [Directive] {
        let cancel: [Directive] = mirrors && tellPeer ? [.cancelMirrors] : []
        let tell: [Directive] = tellPeer ? [.sendAbort(why)] : []
        return move(.aborted, then: cancel + tell + [.resumeLocal, .failed(Failure(reason: why, guest: .source))])
    }
}
