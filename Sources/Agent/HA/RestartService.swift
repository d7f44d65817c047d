import ServiceLifecycle

/// Runs the restart supervisor's rounds every `interval` (Protocol.md §9.1) until graceful
/// shutdown or cancellation. The round is injected, so the loop is tested without VMs; the clock
/// is injected so it is tested without waiting.
struct RestartService<C: Clock<Duration>>: Service {
    /// Time between rounds: how late, at most, a death is noticed and a backoff's end is acted on.
    let interval: Duration
    let clock: C
    /// One round (`RestartSupervisor.tick`).
    let round: @Sendable () async -> Void

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [self] in
            while true {
                try await clock.sleep(for: interval)
                await round()
            }
        }
    }
}

extension RestartService where C == ContinuousClock {
    /// Rounds every `interval` on the continuous clock.
    init(interval: Duration, round: @escaping @Sendable () async -> Void) {
        self.init(interval: interval, clock: ContinuousClock(), round: round)
    }
}
