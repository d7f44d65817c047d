import ServiceLifecycle

/// Runs the health monitor (Protocol.md §11.1): a full sample every `sampleEvery` ticks, and at
/// every tick (a second) the operator's replicated mark, so that `host health set` shows at once.
struct HealthService: Service {
    let monitor: HealthMonitor
    var tick: Duration = .seconds(1)
    var sampleEvery = 5

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [monitor, tick, sampleEvery] in
            var n = 0
            while true {
                if n % sampleEvery == 0 { await monitor.sample() } else { await monitor.report() }
                n += 1
                try await Task.sleep(for: tick)
            }
        }
    }
}
