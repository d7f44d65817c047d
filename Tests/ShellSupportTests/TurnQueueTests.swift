import ShellSupport
import Testing

@Suite struct TurnQueueTests {
    /// Holds what the turns did, in the order they did it.
    actor Trace {
        var events: [String] = []
        var queue = TurnQueue()
        func note(_ event: String) { events.append(event) }
        /// A turn that notes its start, awaits, then notes its end: without the queue, a turn
        /// begun later starts while this one waits.
        func begin(_ name: String, pause: Duration) -> Task<Void, any Error> {
            queue.enqueue {
                await self.note("\(name) begins")
                try await Task.sleep(for: pause)
                await self.note("\(name) ends")
            }
        }
        func failing() async throws {
            try await queue.enqueue { () async throws -> Void in
                await self.note("failing begins")
                throw CancellationError()
            }.value
        }
    }

    @Test func turnsRunOneAtATimeInTheOrderTheyWereBegun() async throws {
        let trace = Trace()
        // The first turn is the slowest: it must still end before the second begins.
        let first = await trace.begin("first", pause: .milliseconds(60))
        let second = await trace.begin("second", pause: .milliseconds(1))
        let third = await trace.begin("third", pause: .milliseconds(1))
        _ = try await (first.value, second.value, third.value)
        #expect(await trace.events == ["first begins", "first ends", "second begins", "second ends", "third begins", "third ends"])
    }

    @Test func aFailedTurnGivesItsErrorToItsCallerAndTheNextTurnStillRuns() async throws {
        let trace = Trace()
        await #expect(throws: CancellationError.self) { try await trace.failing() }
        try await trace.begin("after", pause: .milliseconds(1)).value
        #expect(await trace.events == ["failing begins", "after begins", "after ends"])
    }

    @Test func aTurnReturnsItsResult() async throws {
        var queue = TurnQueue()
        let answer = queue.enqueue { 42 }
        #expect(try await answer.value == 42)
    }
}
