import ServiceLifecycle

/// Keeps this host's capacity (running VMs, migrations in flight, free memory, load) in its
/// gossiped member metadata: once at start, then every `interval`, until graceful shutdown or
/// cancellation. `AgentMembership.refresh` gossips only significant changes.
///
/// The refresh is injected, so the loop is tested without a membership service; the clock is
/// injected so it is tested without waiting.
struct CapacityRefreshService<C: Clock<Duration>>: Service {
    /// Time between refreshes.
    let interval: Duration
    let clock: C
    /// Measures the host and updates its metadata.
    let refresh: @Sendable () async -> Void

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [self] in
            while true {
                await refresh()
                try await clock.sleep(for: interval)
            }
        }
    }
}

extension CapacityRefreshService where C == ContinuousClock {
    /// Refreshes every `interval` on the continuous clock.
    init(interval: Duration, refresh: @escaping @Sendable () async -> Void) {
        self.init(interval: interval, clock: ContinuousClock(), refresh: refresh)
    }
}
