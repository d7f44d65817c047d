@testable import Agent
import Logging
import MeshWire
import ServiceLifecycle
import Testing

/// The agent's periodic loops on a manual clock: every round the test asks for, none it does not,
/// and a prompt end at graceful shutdown (the SIGTERM hang of issue 19 was loops like these
/// sleeping through it).
@Suite(.timeLimit(.minutes(1)))
struct PeriodicServiceTests {
    /// The records a test hands the loop, changed between rounds.
    actor Ledger {
        var records: [Hostmesh_V1_OwnershipRecord] = []
        func set(_ records: [Hostmesh_V1_OwnershipRecord]) { self.records = records }
    }

    func record(_ vm: String, owner: String = "node-a", epoch: UInt64) -> Hostmesh_V1_OwnershipRecord {
        var record = Hostmesh_V1_OwnershipRecord()
        record.vmID = vm
        record.owner = owner
        record.epoch = epoch
        return record
    }

    @Test func ownershipSyncSendsEachChangeOnceAndStopsAtGracefulShutdown() async throws {
        let clock = ManualClock()
        let ledger = Ledger()
        let (sent, sink) = AsyncStream.makeStream(of: [Hostmesh_V1_OwnershipRecord].self)
        let service = OwnershipSyncService(interval: .seconds(2), clock: clock, records: { await ledger.records },
                                           broadcast: { sink.yield($0.ownershipUpdate.records) })
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var broadcasts = sent.makeAsyncIterator()

            // Rounds with no records, then one with a change: exactly that change goes out.
            try await clock.waitForSleepers()
            clock.advance(by: .seconds(2))
            try await clock.waitForSleepers()
            let first = [record("vm-1", epoch: 1)]
            await ledger.set(first)
            clock.advance(by: .seconds(1))
            try await Task.sleep(for: .milliseconds(20))
            #expect(clock.sleepers == 1) // not a round yet: half the interval
            clock.advance(by: .seconds(1))
            #expect(await broadcasts.next() == first)

            // Unchanged for three rounds: nothing; then a change, which is the next broadcast.
            for _ in 0..<3 {
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(2))
            }
            try await clock.waitForSleepers()
            let second = first + [record("vm-2", epoch: 3)]
            await ledger.set(second)
            clock.advance(by: .seconds(2))
            #expect(await broadcasts.next() == second)

            // Graceful shutdown ends the loop while it sleeps, without a tick of the clock.
            try await clock.waitForSleepers()
            await group.triggerGracefulShutdown()
            let asked = ContinuousClock.now
            try await tasks.next()
            #expect(ContinuousClock.now - asked < .seconds(1))
            #expect(clock.sleepers == 0)
        }
    }

    @Test func capacityRefreshRunsAtStartThenEveryIntervalUntilShutdown() async throws {
        let clock = ManualClock()
        let (refreshes, sink) = AsyncStream.makeStream(of: Void.self)
        let service = CapacityRefreshService(interval: .seconds(3), clock: clock) { sink.yield() }
        let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = refreshes.makeAsyncIterator()
            #expect(await iterator.next() != nil) // at start, before any sleep
            for _ in 0..<3 {
                try await clock.waitForSleepers()
                clock.advance(by: .seconds(3))
                #expect(await iterator.next() != nil)
            }
            try await clock.waitForSleepers()
            await group.triggerGracefulShutdown()
            try await tasks.next()
            sink.finish()
            #expect(await iterator.next() == nil) // no refresh after the shutdown
        }
    }
}
