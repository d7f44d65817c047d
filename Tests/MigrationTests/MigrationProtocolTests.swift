@testable import Migration
import Testing

@Suite struct MigrationProtocolTests {
    @Test func happyPathJournalsBeforeEveryEffect() {
        var s = SourceMigration(id: "m")
        var d = DestinationMigration(id: "m")
        #expect(s.handle(.start) == [.journal(.requested), .sendPrepare])
        #expect(d.handle(.prepare(refusal: nil)) == [.journal(.admitted), .launchIncoming])
        #expect(d.handle(.ready) == [.replyPrepared(refusal: nil)])
        #expect(s.handle(.admitted) == [.journal(.admitted), .openTransfer])
        #expect(s.handle(.transferReady) == [.journal(.transferring), .startTransfer])
        #expect(s.handle(.transferCompleted) == [.journal(.committing), .sendCommit])
        #expect(d.handle(.commit(loaded: true)) == [.journal(.committed), .resume])
        #expect(d.handle(.resumed) == [.journal(.running), .replyCommitted(error: nil)])
        #expect(s.handle(.committed) == [.journal(.committed), .releaseLocal])
        #expect(s.handle(.released) == [.journal(.done), .succeeded])
    }

    @Test func localDisksAreMirroredBeforeTheMemoryAndDeletedOnlyAfterTheRelease() {
        var s = SourceMigration(id: "m", disks: .mirrored(keepSource: false))
        _ = s.handle(.start)
        #expect(s.handle(.admitted) == [.journal(.admitted), .openTransfer])
        #expect(s.handle(.transferReady) == [.journal(.mirroring), .startMirrors])
        #expect(s.handle(.mirrorsReady) == [.journal(.transferring), .startTransfer])
        #expect(s.handle(.transferCompleted) == [.journal(.committing), .sendCommit])
        #expect(s.handle(.committed) == [.journal(.committed), .releaseLocal])
        #expect(s.handle(.released) == [.deleteSourceDisks, .journal(.done), .succeeded])
        // Kept on request: nothing deleted.
        var kept = SourceMigration(id: "m", journaled: .committed, disks: .mirrored(keepSource: true))
        #expect(kept.handle(.released) == [.journal(.done), .succeeded])
        // Never before the release is durable.
        var failed = SourceMigration(id: "m", journaled: .committed, disks: .mirrored(keepSource: false))
        #expect(!failed.handle(.releaseFailed("disk full")).contains(.deleteSourceDisks))
        var doubt = SourceMigration(id: "m", journaled: .committing, disks: .mirrored(keepSource: false))
        #expect(!doubt.handle(.peerLost("cut")).contains(.deleteSourceDisks))
    }

    @Test func aFailedMirrorStopsEveryMirrorBeforeTheDestinationDiscards() {
        for event in [SourceMigration.Event.mirrorFailed("nbd"), .peerLost("cut"), .transferFailed("qemu")] {
            var s = SourceMigration(id: "m", disks: .mirrored(keepSource: false))
            _ = s.handle(.start); _ = s.handle(.admitted); _ = s.handle(.transferReady)
            let out = s.handle(event)
            #expect(Array(out.prefix(3)) == [.journal(.aborted), .cancelMirrors, .sendAbort(out.compactMap { if case .sendAbort(let r) = $0 { r } else { nil } }.first ?? "")])
            #expect(out.contains(.resumeLocal) && !out.contains(.deleteSourceDisks))
        }
        // After the memory transfer began, too; and after a restart in either phase.
        var t = SourceMigration(id: "m", journaled: .transferring, disks: .mirrored(keepSource: true))
        #expect(t.handle(.transferFailed("qemu")).contains(.cancelMirrors))
        var r = SourceMigration(id: "m", journaled: .mirroring, disks: .mirrored(keepSource: true))
        #expect(r.handle(.recovered).contains(.cancelMirrors))
        // Without local disks there is nothing to cancel.
        var plain = SourceMigration(id: "m", journaled: .transferring)
        #expect(!plain.handle(.transferFailed("qemu")).contains(.cancelMirrors))
    }

    @Test func failuresBeforeCommitLeaveTheGuestOnTheSource() {
        for event in [SourceMigration.Event.transferFailed("qemu"), .peerLost("cut")] {
            var s = SourceMigration(id: "m")
            _ = s.handle(.start); _ = s.handle(.admitted); _ = s.handle(.transferReady)
            let out = s.handle(event)
            #expect(out.first == .journal(.aborted) && out.contains(.resumeLocal))
        }
        var refused = SourceMigration(id: "m")
        _ = refused.handle(.start)
        #expect(refused.handle(.refused("full")).contains(.resumeLocal))
    }

    @Test func aPhaseThatCannotBeJournaledIsNotActedOn() {
        // `committing` could not be written: the commit it would lead to is not sent (the shell
        // drops it), and the guest, which the destination cannot run without one, resumes here.
        var s = SourceMigration(id: "m")
        _ = s.handle(.start); _ = s.handle(.admitted); _ = s.handle(.transferReady)
        #expect(s.handle(.transferCompleted) == [.journal(.committing), .sendCommit])
        let out = s.handle(.journalFailed("disk full"))
        #expect(out.first == .journal(.aborted) && out.contains(.resumeLocal) && out.contains(.sendAbort("cannot write the migration journal: disk full")))
        #expect(!out.contains(.sendCommit) && !out.contains(.reclaim))
        #expect(s.phase == .aborted)
        // Past `committing`, a phase that could not be written does not stop what it leads to:
        // the destination's journal settles the owner, and recovery repeats what was lost.
        var late = SourceMigration(id: "m", journaled: .committing)
        #expect(late.handle(.committed) == [.journal(.committed), .releaseLocal])
        #expect(late.handle(.journalFailed("disk full")) == [.releaseLocal])
        var doubt = SourceMigration(id: "m", journaled: .committing)
        _ = doubt.handle(.peerLost("timeout"))
        #expect(doubt.handle(.journalFailed("disk full")) == [.keepPaused, .failed(.init(reason: "handover in doubt: timeout", guest: .inDoubt))])
    }

    @Test func lostAnswerToCommitIsInDoubtAndNeverResumes() {
        var s = SourceMigration(id: "m", journaled: .committing)
        let out = s.handle(.peerLost("timeout"))
        #expect(out.first == .journal(.inDoubt) && out.contains(.keepPaused) && !out.contains(.resumeLocal))
        // Resolution: only the destination's word releases the guest here.
        var a = s; #expect(a.handle(.peerReports(.committed)).contains(.releaseLocal))
        // Taking it back: the epoch first (above the destination's), then the phase, then the guest.
        var b = s; #expect(Array(b.handle(.peerReports(.discarded("lost"))).prefix(3)) == [.reclaim, .journal(.aborted), .resumeLocal])
        var c = s; #expect(Array(c.handle(.peerReports(.unknown)).prefix(3)) == [.reclaim, .journal(.aborted), .resumeLocal])
    }

    @Test func committedIsAnsweredOnlyOnceTheGuestRuns() {
        var d = DestinationMigration(id: "m", journaled: .admitted)
        _ = d.handle(.commit(loaded: true))
        #expect(d.handle(.query) == [.replyVerdict(.receiving)])
        _ = d.handle(.resumed)
        #expect(d.handle(.query) == [.replyVerdict(.committed)])
        let restarted = DestinationMigration(id: "m", journaled: .committed)
        #expect(restarted.verdict == .receiving)
    }

    @Test func postcopyCommitsThroughTheMachine() {
        var s = SourceMigration(id: "m")
        _ = s.handle(.start); _ = s.handle(.admitted); _ = s.handle(.transferReady)
        #expect(s.handle(.postcopyStarted) == [.journal(.committing), .sendCommit])
        // Without the record no commit: the guest, not yet run elsewhere, resumes here.
        let out = s.handle(.journalFailed("disk full"))
        #expect(out.contains(.resumeLocal) && !out.contains(.sendCommit))
    }

    @Test func failedDurableWritesKeepTheGuestPaused() {
        // Taking back needs the reclaimed epoch: without it, back to doubt, paused.
        var s = SourceMigration(id: "m", journaled: .committing)
        #expect(Array(s.handle(.commitRefused("gone")).prefix(2)) == [.reclaim, .journal(.aborted)])
        let out = s.handle(.reclaimFailed("disk full"))
        #expect(out.first == .journal(.inDoubt) && out.contains(.keepPaused) && !out.contains(.resumeLocal))
        #expect(s.phase == .inDoubt)
        // Releasing needs its write: without it the copy stays paused and held, phase committed.
        var r = SourceMigration(id: "m", journaled: .committing)
        _ = r.handle(.committed)
        #expect(r.handle(.releaseFailed("disk full")).first == .keepPaused)
        #expect(r.phase == .committed)
    }

    @Test func operatorDecisionsGoThroughTheMachine() {
        var resume = SourceMigration(id: "m", journaled: .inDoubt)
        #expect(Array(resume.handle(.operatorResumed).prefix(3)) == [.reclaim, .journal(.aborted), .resumeLocal])
        var release = SourceMigration(id: "m", journaled: .inDoubt)
        #expect(release.handle(.operatorReleased) == [.journal(.committed), .releaseLocal])
        // Only in doubt: an operator cannot take back a handover that is still under way.
        var live = SourceMigration(id: "m", journaled: .committing)
        #expect(live.handle(.operatorResumed).isEmpty)
    }

    @Test func destinationJournalFailures() {
        var d = DestinationMigration(id: "m")
        _ = d.handle(.prepare(refusal: nil))
        #expect(d.handle(.journalFailed("disk full")) == [.discard, .replyPrepared(refusal: "cannot journal the admission: disk full")])
        var c = DestinationMigration(id: "m", journaled: .admitted)
        _ = c.handle(.commit(loaded: true))
        let out = c.handle(.journalFailed("disk full"))
        #expect(out == [.journal(.discarded), .discard, .replyCommitted(error: "discarded: cannot journal the commit: disk full")])
        // The discard's own write failing does not spare the copy, nor the answer.
        #expect(c.handle(.journalFailed("disk full")) == [.discard, .replyCommitted(error: "discarded: cannot journal the commit: disk full")])
        // The guest runs, but `running` is not on disk: no `committed` is promised until it is.
        var r = DestinationMigration(id: "m", journaled: .admitted)
        _ = r.handle(.commit(loaded: true))
        #expect(r.handle(.resumed) == [.journal(.running), .replyCommitted(error: nil)])
        #expect(r.handle(.journalFailed("disk full")).isEmpty)
        #expect(r.verdict == .receiving)
        #expect(r.handle(.query) == [.journal(.running), .replyVerdict(.committed)])
        #expect(r.handle(.journalFailed("disk full")).isEmpty) // still not on disk: no answer
        #expect(r.handle(.query) == [.journal(.running), .replyVerdict(.committed)])
        var l = DestinationMigration(id: "m")
        _ = l.handle(.prepare(refusal: nil))
        #expect(l.handle(.launchFailed("no qemu")) == [.journal(.discarded), .discard, .replyPrepared(refusal: "cannot start the destination QEMU: no qemu")])
    }

    @Test func sourceReclaimsOnlyAfterCommitting() {
        var refused = SourceMigration(id: "m", journaled: .committing)
        #expect(Array(refused.handle(.commitRefused("resume failed")).prefix(3)) == [.reclaim, .journal(.aborted), .resumeLocal])
        for phase in [SourceMigration.Phase.requested, .admitted, .transferring] {
            var s = SourceMigration(id: "m", journaled: phase)
            #expect(!s.handle(.recovered).contains(.reclaim)) // nothing can run elsewhere: same epoch
        }
    }

    @Test func destinationDiscardsWhenItCannotResumeAfterCommit() {
        var d = DestinationMigration(id: "m", journaled: .admitted)
        #expect(d.handle(.commit(loaded: true)) == [.journal(.committed), .resume])
        // A late abort (or the channel's end) does not undo a commit.
        #expect(d.handle(.abort("channel ended")) == [])
        #expect(d.verdict == .receiving) // not final before the guest runs here
        // QEMU died before `cont`: discarded (journaled) before the source hears of it.
        let out = d.handle(.resumeFailed("QEMU exited"))
        #expect(out == [.journal(.discarded), .discard, .replyCommitted(error: "discarded: resume failed after commit: QEMU exited")])
        #expect(d.verdict == .discarded("resume failed after commit: QEMU exited"))
        var recovered = DestinationMigration(id: "m", journaled: .committed)
        #expect(recovered.handle(.recovered(qemuAlive: false)) == [.journal(.discarded), .discard])
        #expect(recovered.handle(.commit(loaded: true)).allSatisfy { if case .replyCommitted(let e?) = $0 { !e.isEmpty } else { false } })
    }

    @Test func destinationFencesLateCommits() {
        var d = DestinationMigration(id: "m")
        _ = d.handle(.prepare(refusal: nil))
        #expect(d.handle(.abort("channel ended")) == [.journal(.discarded), .discard])
        #expect(d.handle(.commit(loaded: true)) == [.replyCommitted(error: "discarded: channel ended")])
        #expect(d.verdict == .discarded("channel ended"))
        var fresh = DestinationMigration(id: "x")
        #expect(fresh.handle(.commit(loaded: true)) == [.replyCommitted(error: "unknown migration")])
        #expect(fresh.verdict == .unknown)
    }

    @Test func recoveryRules() {
        for phase in [SourceMigration.Phase.requested, .admitted, .mirroring, .transferring] {
            var s = SourceMigration(id: "m", journaled: phase)
            #expect(s.handle(.recovered).contains(.resumeLocal))
        }
        var committing = SourceMigration(id: "m", journaled: .committing)
        #expect(committing.handle(.recovered) == [.journal(.inDoubt), .keepPaused, .queryPeer])
        var committed = SourceMigration(id: "m", journaled: .committed)
        #expect(committed.handle(.recovered) == [.releaseLocal])
        var admitted = DestinationMigration(id: "m", journaled: .admitted)
        #expect(admitted.handle(.recovered(qemuAlive: true)) == [.journal(.discarded), .discard])
        var owned = DestinationMigration(id: "m", journaled: .committed)
        #expect(owned.handle(.recovered(qemuAlive: true)) == [.resume])
    }

    /// A seeded simulation of both machines, driven through the same executors the agent uses,
    /// with their guests, a lossy channel, failing journal writes, agent crashes and restarts,
    /// and in-doubt resolution. At every step at most one copy of the guest runs; once
    /// everything has settled, the guest exists on exactly one host.
    @Test func neverTwoRunningCopies() async {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(state: seed)
        for round in 0..<3000 {
            let world = World(mirrored: round % 2 == 1)
            await world.run(&rng)
            #expect(world.maxRunning <= 1, "seed \(seed) round \(round): two copies ran: \(world.trace)")
            #expect(world.copies == (world.qemuDied ? world.copies : 1) && world.copies <= 1,
                    "seed \(seed) round \(round): \(world.copies) copies at the end: \(world.trace)")
            // Exactly one journal owns the VM, and the guest, if it lives, is there.
            let owners = (world.sourceRow == nil ? 0 : 1) + (world.destinationRow == nil ? 0 : 1)
            #expect(owners == 1, "seed \(seed) round \(round): \(owners) owners at the end: \(world.trace)")
            #expect(world.sourceGuest == .none || world.sourceRow != nil, "seed \(seed) round \(round): a guest on a host that does not own it: \(world.trace)")
            #expect(world.destinationGuest == .none || world.destinationRow != nil, "seed \(seed) round \(round): a guest on a host that does not own it: \(world.trace)")
            // Disks: never the only copy deleted; the owner's image exists; no partial image left.
            #expect(world.lostDisk == nil, "seed \(seed) round \(round): \(world.lostDisk ?? ""): \(world.trace)")
            if world.mirrored {
                if world.sourceRow != nil { #expect(world.sourceImage, "seed \(seed) round \(round): the owner's image is gone: \(world.trace)") }
                if world.destinationRow != nil { #expect(world.destinationImage, "seed \(seed) round \(round): the owner's image is gone: \(world.trace)") }
                if world.destinationRow == nil && !world.stopped {
                    #expect(!world.destinationImage, "seed \(seed) round \(round): a partial image left on the destination: \(world.trace)")
                }
            }
        }
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The source agent's side of the simulated world: what the real agent's environment does to its
/// journal, QEMU and channel, done to the world's state.
struct SimulatedSource: SourceMigrationEnvironment {
    unowned let world: World

    func journal(_ phase: SourceMigration.Phase) async throws {
        try world.maybeFailWrite("S:journal \(phase)")
        world.sourceJournal = phase
    }
    func sendPrepare() async -> SourceMigration.Event? { world.toDestination.append(.prepare); return nil }
    func openTransfer() async -> SourceMigration.Event? { .transferReady }
    func startMirrors() async -> SourceMigration.Event? {
        return world.destinationImage ? .mirrorsReady : .mirrorFailed("no export")
    }
    func cancelMirrors() async {}
    func deleteSourceDisks() async {
        world.trace.append("S:delete disks")
        world.sourceImage = false
        world.observe()
    }
    func startTransfer() async -> SourceMigration.Event? { nil } // QEMU completes (or fails) later
    func sendCommit() async -> SourceMigration.Event? { world.toDestination.append(.commit); return nil }
    func sendAbort(_ reason: String) async { world.toDestination.append(.abort) }
    func queryPeer() async -> SourceMigration.Event? { world.toDestination.append(.query); return nil }
    func reclaim() async throws {
        try world.maybeFailWrite("S:reclaim")
        world.sourceRow = 3 // epoch + 2
    }
    func resumeLocal() async { if world.sourceGuest == .paused { world.sourceGuest = .running } }
    func keepPaused() async {}
    func releaseLocal() async throws {
        try world.maybeFailWrite("S:release")
        world.sourceGuest = .none
        world.sourceRow = nil
    }
    func succeeded() async { world.finished = true }
    func failed(_ failure: SourceMigration.Failure) async { world.finished = true }
}

/// The destination agent's side of the simulated world.
struct SimulatedDestination: DestinationMigrationEnvironment {
    unowned let world: World

    func journal(_ phase: DestinationMigration.Phase, reason: String?) async throws {
        try world.maybeFailWrite("D:journal \(phase)")
        if phase == .committed {
            world.destinationRow = 2
            // The end-to-end matrix's hook: the agent stops right after journaling its commit.
            if world.stopAfterCommit { world.stopped = true; world.trace.append("D:stopped after commit") }
        }
        if phase == .discarded { world.destinationRow = nil }
        world.destinationJournal = phase
    }
    func launchIncoming() async -> DestinationMigration.Event? {
        world.destinationGuest = .paused
        if world.mirrored { world.destinationImage = true }
        return .ready
    }
    func replyPrepared(refusal: String?) async { world.toSource.append(.prepared(refusal)) }
    func resume() async -> DestinationMigration.Event? {
        // A stopped agent resumes when it continues (or never, if it crashes first).
        guard !world.stopped else { world.resumePending = true; return nil }
        return world.resumeDestinationGuest()
    }
    func replyCommitted(error: String?) async { world.toSource.append(.committed(error)) }
    func discard() async {
        world.destinationGuest = .none
        world.destinationImage = false
    }
    func replyVerdict(_ verdict: DestinationMigration.Verdict) async { world.toSource.append(.verdict(verdict)) }
}

/// The two agents, their QEMUs and a channel, driven by random faults.
final class World {
    enum Guest { case none, paused, running }
    enum Message { case prepare, prepared(String?), commit, committed(String?), abort, query, verdict(DestinationMigration.Verdict) }

    var source: SourceExecutor<SimulatedSource>!
    var destination: DestinationExecutor<SimulatedDestination>!
    var sourceGuest = Guest.running
    var destinationGuest = Guest.none
    var toDestination: [Message] = []
    var toSource: [Message] = []
    var sourceJournal = SourceMigration.Phase.requested
    var destinationJournal: DestinationMigration.Phase?
    var maxRunning = 1
    var trace: [String] = []
    var finished = false
    /// The VM rows (ownership epochs) each side's journal holds: the source's from the start,
    /// the destination's from its commit.
    var sourceRow: Int64? = 1
    var destinationRow: Int64?
    /// True once a fault killed a QEMU: the guest may then be gone, but never duplicated.
    var qemuDied = false
    /// When set, the destination stops right after journaling its commit (the test hook of the
    /// end-to-end matrix) and carries out the rest later, unless it crashes first.
    var stopAfterCommit = false
    var stopped = false
    var resumePending = false
    /// The VM's disks are local and mirrored (else shared); the source deletes its copy after commit.
    var mirrored = false
    /// The source's image (it exists from the start) and the destination's (created at admission).
    var sourceImage = true
    var destinationImage = false
    /// Set when the source's image was gone while the destination's was not the guest's for good.
    var lostDisk: String?
    /// Chance (in 1/100) that a durable write fails, as a full or broken disk would; a healed
    /// world writes again.
    var writeFailurePercent = 0
    private var failures = SplitMix(state: 0)

    init(mirrored: Bool = false) {
        self.mirrored = mirrored
        source = SourceExecutor(machine: SourceMigration(id: "m", disks: disks), environment: SimulatedSource(world: self))
        destination = DestinationExecutor(machine: DestinationMigration(id: "m"), environment: SimulatedDestination(world: self))
    }

    var copies: Int { (sourceGuest == .none ? 0 : 1) + (destinationGuest == .none ? 0 : 1) }

    struct WriteFailed: Error {}

    func maybeFailWrite(_ what: String) throws {
        observe()
        guard writeFailurePercent > 0, Int.random(in: 0..<100, using: &failures) < writeFailurePercent else {
            trace.append(what)
            return
        }
        trace.append(what + " FAILED")
        throw WriteFailed()
    }

    var disks: SourceMigration.Disks { mirrored ? .mirrored(keepSource: false) : .shared }

    func observe() {
        // The source's copy may go only once the destination's is the guest's for good.
        if mirrored, !sourceImage, !(destinationImage && destinationJournal == .running) {
            lostDisk = lostDisk ?? "source image deleted while the destination's is \(destinationImage ? "\(String(describing: destinationJournal))" : "gone")"
        }
        let running = (sourceGuest == .running ? 1 : 0) + (destinationGuest == .running ? 1 : 0)
        maxRunning = max(maxRunning, running)
    }

    func resumeDestinationGuest() -> DestinationMigration.Event {
        defer { observe() }
        switch destinationGuest {
        case .paused:
            destinationGuest = .running
            return .resumed
        case .running:
            return .resumed
        case .none:
            return .resumeFailed("QEMU exited")
        }
    }

    func toSource(_ event: SourceMigration.Event) async {
        trace.append("S<-\(event)")
        await source.handle(event)
        observe()
    }

    func toDestination(_ event: DestinationMigration.Event) async {
        trace.append("D<-\(event)")
        await destination.handle(event)
        observe()
    }

    func deliverToDestination(_ m: Message) async {
        guard !stopped else { toDestination.insert(m, at: 0); return } // a stopped agent reads nothing
        switch m {
        case .prepare: await toDestination(.prepare(refusal: nil))
        case .commit: await toDestination(.commit(loaded: destinationGuest != .none))
        case .abort: await toDestination(.abort("source aborted"))
        case .query: await toDestination(.query)
        default: break
        }
    }

    func deliverToSource(_ m: Message) async {
        switch m {
        case .prepared(nil): await toSource(.admitted)
        case .prepared(let refusal?): await toSource(.refused(refusal))
        case .committed(nil): await toSource(.committed)
        case .committed(let e?): await toSource(.commitRefused(e))
        case .verdict(let v): await toSource(.peerReports(v))
        default: break
        }
    }

    /// The stopped destination agent goes on where it stopped.
    func continueDestination() async {
        stopped = false
        guard resumePending else { return }
        resumePending = false
        trace.append("D:continues")
        await toDestination(resumeDestinationGuest())
    }

    /// The source's journal shows a handover that is not settled (in doubt, committed but not
    /// released, or a take-back whose last write failed).
    var unsettled: Bool { [.committing, .inDoubt, .committed].contains(sourceJournal) && source.machine.phase != .committing }

    /// The in-doubt retry loop (or a restart's recovery): the journaled phase, recovered.
    func retryFromJournal() async {
        guard unsettled else { return }
        trace.append("S:retry")
        source = SourceExecutor(machine: SourceMigration(id: "m", journaled: sourceJournal, disks: disks), environment: SimulatedSource(world: self))
        await toSource(.recovered)
    }

    func crashDestination() async {
        trace.append("D:crash")
        toDestination.removeAll()
        stopped = false
        resumePending = false
        let machine = destinationJournal.map { DestinationMigration(id: "m", journaled: $0) } ?? DestinationMigration(id: "m")
        destination = DestinationExecutor(machine: machine, environment: SimulatedDestination(world: self))
        await toDestination(.recovered(qemuAlive: destinationGuest != .none))
    }

    func run(_ rng: inout SplitMix) async {
        stopAfterCommit = Bool.random(using: &rng)
        writeFailurePercent = Int.random(in: 0..<4, using: &rng) == 0 ? 10 : 0
        failures = SplitMix(state: rng.next())
        await toSource(.start)
        var steps = 0
        while steps < 200 {
            steps += 1
            let phase = source.machine.phase
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<35 where !toDestination.isEmpty: await deliverToDestination(toDestination.removeFirst())
            case 35..<70 where !toSource.isEmpty: await deliverToSource(toSource.removeFirst())
            case 70..<78 where phase == .transferring && sourceGuest != .none:
                // QEMU finishes sending (or enters post-copy): the guest stops here for good.
                sourceGuest = .paused
                trace.append("S:qemu completed")
                await toSource(Bool.random(using: &rng) ? .transferCompleted : .postcopyStarted)
            case 78..<81 where phase == .transferring:
                trace.append("S:qemu failed")
                await toSource(.transferFailed("qemu"))
            case 81..<85:
                // The channel breaks: messages in flight are lost; both sides notice.
                trace.append("cut")
                toDestination.removeAll(); toSource.removeAll()
                await toSource(.peerLost("cut"))
                if !stopped { await toDestination(.abort("channel ended")) }
            case 85..<89:
                // The source agent crashes and restarts from its journal (its QEMU lives on).
                trace.append("S:crash")
                toSource.removeAll()
                source = SourceExecutor(machine: SourceMigration(id: "m", journaled: sourceJournal, disks: disks), environment: SimulatedSource(world: self))
                await toSource(.recovered)
            case 93..<95 where sourceGuest != .none:
                trace.append("S:qemu killed")
                sourceGuest = .none
                qemuDied = true
                if phase == .transferring || phase == .admitted || phase == .mirroring { await toSource(.transferFailed("qemu died")) }
            case 95..<97 where destinationGuest != .none:
                trace.append("D:qemu killed")
                destinationGuest = .none
                qemuDied = true
                if destination.machine.phase == .admitted && !stopped { await toDestination(.abort("qemu died")) }
            case 97..<100 where stopped:
                await continueDestination()
            case 89..<93:
                await crashDestination()
            default:
                if toDestination.isEmpty && toSource.isEmpty { await retryFromJournal() }
            }
            if finished && toDestination.isEmpty && toSource.isEmpty && !unsettled && !stopped { break }
        }
        // Heal: disks work again; deliver everything, resolve doubt, until quiet.
        writeFailurePercent = 0
        for _ in 0..<60 {
            if stopped { await continueDestination(); continue }
            if !toDestination.isEmpty { await deliverToDestination(toDestination.removeFirst()); continue }
            if !toSource.isEmpty { await deliverToSource(toSource.removeFirst()); continue }
            if unsettled { await retryFromJournal(); continue }
            if source.machine.phase == .committing {
                // The commit's answer never came: the watchdog closes the channel.
                await toSource(.peerLost("no commit confirmation")); continue
            }
            if let journaled = destinationJournal, journaled != destination.machine.phase {
                // A write the destination could not make: its next start recovers from what is journaled.
                await crashDestination(); continue
            }
            break
        }
    }
}
