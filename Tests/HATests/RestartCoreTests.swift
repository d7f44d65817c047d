import HA
import MeshTime
import Testing

/// Restart in place (Protocol.md §9.1): the core's decisions, on virtual time.
struct RestartCoreTests {
    let settings = RestartSettings(limit: 3, window: .seconds(600), firstBackoff: .seconds(1), maxBackoff: .seconds(60))
    func at(_ seconds: Double) -> MeshInstant { MeshInstant(sinceOrigin: .milliseconds(Int64(seconds * 1000))) }

    /// Drives one restart to the end: the exit, the backoff, the journal, the start.
    func restart(_ core: inout RestartCore, exit: RestartExit, epoch: Int64, at seconds: Double) -> (record: RestartRecord?, waited: Double) {
        #expect(core.handle(.qemuExited(exit, epoch: epoch, now: at(seconds))) == [])
        var t = seconds
        while t < seconds + 120 {
            t += 0.25
            let directives = core.handle(.timerFired(now: at(t)))
            if case let .journal(record)? = directives.first {
                #expect(directives.count == 1, "journal comes alone: nothing starts before it is durable")
                #expect(core.handle(.journaled(now: at(t))) == [.start(epoch: record.epoch)])
                #expect(core.handle(.started(now: at(t + 2))) == [])
                return (record, t - seconds)
            }
            #expect(directives == [])
        }
        return (nil, t - seconds)
    }

    @Test func aDeadQEMUIsRestartedAfterTheBackoffAtTheNextEpochJournaledFirst() {
        var core = RestartCore(settings: settings)
        let (record, waited) = restart(&core, exit: .killed(signal: 9), epoch: 4, at: 10)
        #expect(record == RestartRecord(previousEpoch: 4, epoch: 5, count: 1, reason: .killed(signal: 9)))
        #expect(waited == 1)
        #expect(core.state == .running)
    }

    @Test func theBackoffDoublesAndTheLimitGivesUpWithTheReason() {
        var core = RestartCore(settings: settings)
        var epoch: Int64 = 1
        var waits: [Double] = []
        for i in 0..<3 {
            let (record, waited) = restart(&core, exit: .exited(code: 1), epoch: epoch, at: Double(i) * 20)
            epoch = record?.epoch ?? epoch
            waits.append(waited)
        }
        #expect(waits == [1, 2, 4])
        #expect(epoch == 4)
        let directives = core.handle(.qemuExited(.killed(signal: 9), epoch: epoch, now: at(80)))
        guard case let .giveUp(reason)? = directives.first, directives.count == 1 else {
            Issue.record("expected giveUp, got \(directives)")
            return
        }
        #expect(reason.contains("killed by signal 9") && reason.contains("3 restarts within 10 min") && reason.contains("vm start"))
        #expect(core.isFinished)
        // Nothing more comes from a failed core.
        #expect(core.handle(.timerFired(now: at(1000))) == [])
        #expect(core.handle(.qemuExited(.killed(signal: 9), epoch: epoch, now: at(1000))) == [])
    }

    @Test func restartsOutsideTheWindowNoLongerCount() {
        var core = RestartCore(settings: settings)
        var epoch: Int64 = 1
        for i in 0..<3 { epoch = restart(&core, exit: .killed(signal: 9), epoch: epoch, at: Double(i) * 10).record?.epoch ?? epoch }
        // 700 s later the three restarts are out of the 600 s window: the first backoff again.
        let (record, waited) = restart(&core, exit: .killed(signal: 9), epoch: epoch, at: 700)
        #expect(record?.count == 4 && record?.epoch == 5)
        #expect(waited == 1)
    }

    @Test func aFailedJournalWriteStartsNothingAndGivesUp() {
        var core = RestartCore(settings: settings)
        #expect(core.handle(.qemuExited(.killed(signal: 9), epoch: 2, now: at(0))) == [])
        #expect(core.handle(.timerFired(now: at(0.5))) == [])
        #expect(core.handle(.timerFired(now: at(1))) == [.journal(RestartRecord(previousEpoch: 2, epoch: 3, count: 1, reason: .killed(signal: 9)))])
        let directives = core.handle(.journalFailed("disk I/O error"))
        guard case let .giveUp(reason)? = directives.first, directives.count == 1 else {
            Issue.record("expected giveUp, got \(directives)")
            return
        }
        #expect(reason.contains("disk I/O error") && reason.contains("nothing was started"))
        #expect(core.handle(.journaled(now: at(2))) == [], "a late success report starts nothing")
    }

    @Test func aRestartThatDoesNotComeUpCountsAsAFailureFromTheJournaledEpoch() {
        var core = RestartCore(settings: settings)
        #expect(core.handle(.qemuExited(.killed(signal: 9), epoch: 1, now: at(0))) == [])
        #expect(core.handle(.timerFired(now: at(1))).count == 1)
        #expect(core.handle(.journaled(now: at(1))) == [.start(epoch: 2)])
        #expect(core.handle(.startFailed("QEMU exited during startup", now: at(1.5))) == [])
        #expect(core.state == .backingOff(until: at(3.5), epoch: 2, reason: .startFailed("QEMU exited during startup")))
        #expect(core.handle(.timerFired(now: at(3.5))) == [.journal(RestartRecord(previousEpoch: 2, epoch: 3, count: 2,
                                                                                     reason: .startFailed("QEMU exited during startup")))])
    }

    @Test func aVMStoppedOrMigratedMeanwhileIsLeftAlone() {
        for step in 0..<3 {
            var core = RestartCore(settings: settings)
            _ = core.handle(.qemuExited(.killed(signal: 9), epoch: 1, now: at(0)))
            if step >= 1 { _ = core.handle(.timerFired(now: at(1))) }
            if step >= 2 { _ = core.handle(.journaled(now: at(1))) }
            #expect(core.handle(.withdrawn) == [])
            #expect(core.state == .withdrawn && core.isFinished)
            #expect(core.handle(.timerFired(now: at(100))) == [])
        }
    }

    @Test func theBackoffIsCapped() {
        let s = RestartSettings(limit: 50, window: .seconds(600), firstBackoff: .seconds(1), maxBackoff: .seconds(60))
        #expect((0..<10).map { s.backoff(afterRecentRestarts: $0) } == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map { Duration.seconds($0) })
    }

    /// A seeded random schedule of exits, ticks and results: the epoch journaled always rises by
    /// one from the epoch the copy died at, nothing starts without a durable journal record, and
    /// no more than `limit` restarts fall in any window.
    @Test(arguments: [1, 7, 42, 1234, 99_991])
    func randomSchedulesKeepTheInvariants(seed: UInt64) {
        var random = SplitMix(seed: seed)
        var core = RestartCore(settings: RestartSettings(limit: 3, window: .seconds(60), firstBackoff: .milliseconds(500), maxBackoff: .seconds(8)))
        var epoch: Int64 = 1
        var durable: Int64 = 1
        var starts: [MeshInstant] = []
        var now = MeshInstant.origin
        for _ in 0..<2000 {
            now = now + .milliseconds(Int64(random.next() % 700))
            var directives: [RestartDirective]
            switch core.state {
            case .running: directives = random.next() % 4 == 0 ? core.handle(.qemuExited(.killed(signal: 9), epoch: epoch, now: now)) : []
            case .backingOff: directives = core.handle(.timerFired(now: now))
            case .journaling(let record):
                #expect(record.previousEpoch == epoch && record.epoch == epoch + 1, "seed \(seed)")
                if random.next() % 10 == 0 {
                    directives = core.handle(.journalFailed("injected"))
                } else {
                    durable = record.epoch
                    directives = core.handle(.journaled(now: now))
                }
            case .starting(let record):
                epoch = record.epoch
                directives = random.next() % 5 == 0 ? core.handle(.startFailed("injected", now: now)) : core.handle(.started(now: now))
            case .failed, .withdrawn:
                return
            }
            for directive in directives {
                if case let .start(e) = directive {
                    #expect(e == durable, "seed \(seed): start at \(e) before epoch \(e) was journaled (durable \(durable))")
                    starts.append(now)
                }
            }
            for start in starts {
                #expect(starts.filter { $0 >= start && $0 - start < .seconds(60) }.count <= 3, "seed \(seed): more than 3 restarts in 60 s")
            }
        }
    }
}

/// A small seeded generator (SplitMix64), so that every schedule replays from its seed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
