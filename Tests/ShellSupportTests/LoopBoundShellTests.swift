import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOPosix
import ShellSupport
import Testing

/// Loop-confined state for the tests: not Sendable, like a real shell's.
final class CounterState {
    var phase = ShellPhase.idle
    var count = 0
}

enum TestShellError: Error, Equatable {
    case loopGone
    case refused
    case channel(String)
}

/// Runs `body` with a shell on a loop of its own; the shell is released before its loop shuts
/// down (as in production, where shells go before the event loop group).
func withShell(_ body: (LoopBoundShell<CounterState, TestShellError>) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    do {
        let shell = LoopBoundShell<CounterState, TestShellError>(state: CounterState(), eventLoop: group.next(), loopGone: .loopGone)
        try await body(shell)
    }
    try await group.shutdownGracefully()
}

@Suite struct LoopBoundShellTests {
    @Test func onLoopRunsOnTheLoopAndReturnsOrThrowsTyped() async throws { try await withShell { shell in
        let loop = shell.eventLoop
        let count = try await shell.onLoop { state in
            loop.preconditionInEventLoop()
            state.count += 2
            return state.count
        }
        #expect(count == 2)
        await #expect(throws: TestShellError.refused) {
            try await shell.onLoop { state throws(TestShellError) in
                state.count += 1
                throw .refused
            }
        }
        #expect(try await shell.onLoop { $0.count } == 3, "a throwing body's changes stay: only the result is an error")
    } }

    @Test func onLoopAsyncRethrowsTypedAndMapsOtherErrors() async throws { try await withShell { shell in
        let loop = shell.eventLoop
        let value = try await shell.onLoopAsync({ _ in loop.makeSucceededFuture(7) }, otherError: { .channel("\($0)") })
        #expect(value == 7)
        await #expect(throws: TestShellError.refused) {
            try await shell.onLoopAsync({ _ -> EventLoopFuture<Int> in loop.makeFailedFuture(TestShellError.refused) },
                                        otherError: { .channel("\($0)") })
        }
        await #expect(throws: TestShellError.channel("I/O on closed channel")) {
            try await shell.onLoopAsync({ _ -> EventLoopFuture<Int> in loop.makeFailedFuture(ChannelError.ioOnClosedChannel) },
                                        otherError: { .channel("\($0)") })
        }
    } }

    @Test func stoppedCompletesAfterClosingWhateverItsResult() throws {
        let loop = EmbeddedEventLoop()
        let shell = LoopBoundShell<CounterState, TestShellError>(state: CounterState(), eventLoop: loop, loopGone: .loopGone)
        let closing = loop.makePromise(of: Void.self)
        shell.execute { state in state.phase = .stopped }
        shell.stopped(after: closing.futureResult)
        let done = NIOLockedValueBox(false)
        shell.stoppedFuture.whenComplete { _ in done.withLockedValue { $0 = true } }
        loop.run()
        #expect(!done.withLockedValue { $0 })
        closing.fail(ChannelError.alreadyClosed)
        loop.run()
        #expect(done.withLockedValue { $0 })
        #expect(shell.state.phase == .stopped)
    }

    /// A shell released without ever stopping must not leak its stop promise: NIO traps on a
    /// leaked promise in debug builds, so this test would crash the test process without the
    /// `deinit` that completes it.
    @Test func releasedWithoutStoppingDoesNotLeakThePromise() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var shell: LoopBoundShell<CounterState, TestShellError>? =
            LoopBoundShell(state: CounterState(), eventLoop: group.next(), loopGone: .loopGone)
        let stopped = shell!.stoppedFuture
        shell = nil
        try await stopped.get()
        try await group.shutdownGracefully()
    }
}
