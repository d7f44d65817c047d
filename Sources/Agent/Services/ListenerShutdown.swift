import ServiceLifecycle

/// How a listening service ends. At graceful shutdown (or cancellation) it stops accepting,
/// then gives the connections in flight `drain` to finish on their own before cancelling them.
///
/// Without the drain bound a single open connection (a peer that keeps its channel, a
/// `vm migrate` streaming progress) would hold the whole agent up: closing the listening socket
/// ends the accept loop, but the loop's task group still waits for every connection it started.
struct ListenerShutdown<C: Clock<Duration>>: Sendable {
    /// How long connections in flight may take to finish after the listener closed.
    var drain: Duration
    /// The clock `drain` is measured on.
    var clock: C

    /// Runs `accept` (an accept loop that ends once its socket is closed and its connections
    /// have ended) until graceful shutdown or cancellation, then calls `close`, waits at most
    /// `drain` for `accept` to return, and cancels it if it has not.
    func run(accepting accept: @escaping @Sendable () async throws -> Void,
             close: @escaping @Sendable () async -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await accept() }
            group.addTask {
                // Cancelled instead (the group is cancelled, or `accept` failed): close all the same.
                try? await gracefulShutdown()
                await close()
                try? await clock.sleep(for: drain) // cancelled: the drain ends early, which is what cancelling asks
            }
            // Whichever ends first: the accept loop (closed and drained, or failed: its error is
            // the service's) or the drain time (the connections still open are cancelled).
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

extension ListenerShutdown where C == ContinuousClock {
    /// A drain of `drain` on the continuous clock.
    init(drain: Duration) {
        self.init(drain: drain, clock: ContinuousClock())
    }
}
