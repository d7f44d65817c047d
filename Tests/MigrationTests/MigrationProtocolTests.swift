@testable import Migration
import Testing

@Suite struct MigrationProtocolTests {
    @Test func happyPathJournalsBeforeEveryEffect() {
        var s = SourceMigration(id: "m")
        var d = DestinationMigration(id: "m")
        #expect(s.handle(.start) == [.journal(.requested), .sendPrepare])
        #expect(d.handle(.prepare(refusal: nil)) == [.journal(.admitted), .launchIncoming])
        #expect(d.handle(.ready) == [.replyPrepared(refusal: nil)])
        #expect(s.handle(.admitted) == [.journal(.admitted), .startTransfer])
        #expect(s.transferStarted() == [.journal(.transferring)])
        #expect(s.handle(.transferCompleted) == [.journal(.committing), .sendCommit])
        #expect(d.handle(.commit(loaded: true)) == [.journal(.committed), .resume])
        #expect(d.handle(.resumed) == [.journal(.running), .replyCommitted(error: nil)])
        #expect(s.handle(.committed) == [.journal(.committed), .releaseLocal])
        #expect(s.handle(.released) == [.journal(.done), .succeeded])
    }

    @Test func failuresBeforeCommitLeaveTheGuestOnTheSource() {
        for event in [SourceMigration.Event.transferFailed("qemu"), .peerLost("cut")] {
            var s = SourceMigration(id: "m")
            _ = s.handle(.start); _ = s.handle(.admitted)
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
        _ = s.handle(.start); _ = s.handle(.admitted)
        #expect(s.handle(.transferCompleted) == [.journal(.committing), .sendCommit])
        let out = s.handle(.journalFailed("disk full"))
        #expect(out.first == .journal(.aborted) && out.contains(.resumeLocal) && out.contains(.sendAbort("cannot write the migration journal: disk full")))
        #expect(!out.contains(.sendCommit) && !out.contains(.reclaim))
        #expect(s.phase == .aborted)
        // After the commit was journaled and sent, a later failure to journal changes nothing.
        var late = SourceMigration(id: "m", journaled: .committed)
        #expect(late.handle(.journalFailed("disk full")).isEmpty)
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
        var restarted = DestinationMigration(id: "m", journaled: .committed)
        #expect(restarted.verdict == .receiving)
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
        #expect(recovered.handle(.recovered(qemuAlive: false)) == [.journal(.discarded)])
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
        for phase in [SourceMigration.Phase.requested, .admitted, .transferring] {
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

    /// A seeded simulation of both machines with their guests, a lossy channel, agent crashes
    /// and restarts, and in-doubt resolution. At every step at most one copy of the guest runs;
    /// once everything has settled, the guest exists on exactly one host.
    @Test func neverTwoRunningCopies() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(state: seed)
        for round in 0..<3000 {
            var world = World()
            world.run(&rng)
            #expect(world.maxRunning <= 1, "seed \(seed) round \(round): two copies ran: \(world.trace)")
            #expect(world.copies == (world.qemuDied ? world.copies : 1) && world.copies <= 1,
                    "seed \(seed) round \(round): \(world.copies) copies at the end: \(world.trace)")
            // Exactly one journal owns the VM, and the guest, if it lives, is there.
            let owners = (world.sourceRow == nil ? 0 : 1) + (world.destinationRow == nil ? 0 : 1)
            #expect(owners == 1, "seed \(seed) round \(round): \(owners) owners at the end: \(world.trace)")
            #expect(world.sourceGuest == .none || world.sourceRow != nil, "seed \(seed) round \(round): a guest on a host that does not own it: \(world.trace)")
            #expect(world.destinationGuest == .none || world.destinationRow != nil, "seed \(seed) round \(round): a guest on a host that does not own it: \(world.trace)")
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

/// The two agents, their QEMUs and a channel, driven by random faults.
struct World {
    enum Guest { case none, paused, running }
    enum Message { case prepare, prepared(String?), commit, committed(String?), abort, query, verdict(DestinationMigration.Verdict) }

    var source = SourceMigration(id: "m")
    var destination = DestinationMigration(id: "m")
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
    var pendingAtDestination: [DestinationMigration.Directive] = []

    var copies: Int { (sourceGuest == .none ? 0 : 1) + (destinationGuest == .none ? 0 : 1) }

    mutating func observe() {
        let running = (sourceGuest == .running ? 1 : 0) + (destinationGuest == .running ? 1 : 0)
        maxRunning = max(maxRunning, running)
    }

    mutating func sourceDo(_ directives: [SourceMigration.Directive]) {
        for d in directives {
            trace.append("S:\(d)")
            switch d {
            case .journal(let p): sourceJournal = p
            case .sendPrepare: toDestination.append(.prepare)
            case .startTransfer: sourceDo(source.transferStarted())
            case .sendCommit: toDestination.append(.commit)
            case .sendAbort: toDestination.append(.abort)
            case .queryPeer: toDestination.append(.query)
            case .reclaim: sourceRow = 3 // epoch + 2
            case .resumeLocal: if sourceGuest == .paused { sourceGuest = .running }
            case .keepPaused: break
            case .releaseLocal:
                sourceGuest = .none
                sourceRow = nil
                sourceDo(source.handle(.released))
            case .succeeded, .failed: finished = true
            }
            observe()
        }
    }

    mutating func destinationDo(_ directives: [DestinationMigration.Directive]) {
        for (i, d) in directives.enumerated() {
            if stopAfterCommit, i > 0, directives[i - 1] == .journal(.committed) {
                trace.append("D:stopped after commit")
                pendingAtDestination = Array(directives[i...])
                return
            }
            trace.append("D:\(d)")
            switch d {
            case .journal(let p):
                if p == .committed { destinationRow = 2 }
                if p == .discarded { destinationRow = nil }
                destinationJournal = p
            case .launchIncoming:
                destinationGuest = .paused
                destinationDo(destination.handle(.ready))
            case .replyPrepared(let refusal): toSource.append(.prepared(refusal))
            case .resume:
                if destinationGuest == .paused {
                    destinationGuest = .running
                    destinationDo(destination.handle(.resumed))
                } else if destinationGuest == .none {
                    destinationDo(destination.handle(.resumeFailed("QEMU exited")))
                }
            case .replyCommitted(let error): toSource.append(.committed(error))
            case .discard: destinationGuest = .none
            case .replyVerdict(let v): toSource.append(.verdict(v))
            }
            observe()
        }
    }

    mutating func deliverToDestination(_ m: Message) {
        switch m {
        case .prepare: destinationDo(destination.handle(.prepare(refusal: nil)))
        case .commit: destinationDo(destination.handle(.commit(loaded: destinationGuest != .none)))
        case .abort: destinationDo(destination.handle(.abort("source aborted")))
        case .query: destinationDo(destination.handle(.query))
        default: break
        }
    }

    mutating func deliverToSource(_ m: Message) {
        switch m {
        case .prepared(nil): sourceDo(source.handle(.admitted))
        case .prepared(let refusal?): sourceDo(source.handle(.refused(refusal)))
        case .committed(nil): sourceDo(source.handle(.committed))
        case .committed(let e?): sourceDo(source.handle(.commitRefused(e)))
        case .verdict(let v): sourceDo(source.handle(.peerReports(v)))
        default: break
        }
    }

    mutating func run(_ rng: inout SplitMix) {
        stopAfterCommit = Bool.random(using: &rng)
        sourceDo(source.handle(.start))
        var steps = 0
        while steps < 200 {
            steps += 1
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<35 where !toDestination.isEmpty: deliverToDestination(toDestination.removeFirst())
            case 35..<70 where !toSource.isEmpty: deliverToSource(toSource.removeFirst())
            case 70..<78 where (source.phase == .transferring || source.phase == .admitted) && sourceGuest != .none:
                // QEMU finishes sending: the guest stops here for good.
                sourceGuest = .paused
                trace.append("S:qemu completed")
                sourceDo(source.handle(.transferCompleted))
            case 78..<81 where source.phase == .transferring:
                trace.append("S:qemu failed")
                sourceDo(source.handle(.transferFailed("qemu")))
            case 81..<85:
                // The channel breaks: messages in flight are lost; both sides notice.
                trace.append("cut")
                toDestination.removeAll(); toSource.removeAll()
                sourceDo(source.handle(.peerLost("cut")))
                destinationDo(destination.handle(.abort("channel ended")))
            case 85..<89:
                // The source agent crashes and restarts from its journal (its QEMU lives on).
                trace.append("S:crash")
                toSource.removeAll()
                source = SourceMigration(id: "m", journaled: sourceJournal)
                sourceDo(source.handle(.recovered))
            case 93..<95 where sourceGuest != .none:
                trace.append("S:qemu killed")
                sourceGuest = .none
                qemuDied = true
                if source.phase == .transferring || source.phase == .admitted { sourceDo(source.handle(.transferFailed("qemu died"))) }
            case 95..<97 where destinationGuest != .none:
                trace.append("D:qemu killed")
                destinationGuest = .none
                qemuDied = true
                if destination.phase == .admitted { destinationDo(destination.handle(.abort("qemu died"))) }
            case 97..<100 where !pendingAtDestination.isEmpty:
                trace.append("D:continues")
                let rest = pendingAtDestination
                pendingAtDestination = []
                destinationDo(rest)
            case 89..<93:
                trace.append("D:crash")
                toDestination.removeAll()
                pendingAtDestination = []
                destination = destinationJournal.map { DestinationMigration(id: "m", journaled: $0) } ?? DestinationMigration(id: "m")
                destinationDo(destination.handle(.recovered(qemuAlive: destinationGuest != .none)))
            default:
                if toDestination.isEmpty && toSource.isEmpty && source.phase == .inDoubt {
                    sourceDo([.queryPeer]) // the operator (or a timer) asks again
                }
            }
            if finished && toDestination.isEmpty && toSource.isEmpty && source.phase != .inDoubt { break }
        }
        // Heal: deliver everything, resolve doubt, until quiet.
        for _ in 0..<50 {
            if !pendingAtDestination.isEmpty {
                let rest = pendingAtDestination
                pendingAtDestination = []
                destinationDo(rest)
                continue
            }
            if !toDestination.isEmpty { deliverToDestination(toDestination.removeFirst()); continue }
            if !toSource.isEmpty { deliverToSource(toSource.removeFirst()); continue }
            if source.phase == .inDoubt { sourceDo([.queryPeer]); continue }
            if source.phase == .committed { sourceDo(source.handle(.recovered)); continue }
            break
        }
    }
}
