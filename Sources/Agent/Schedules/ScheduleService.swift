import ServiceLifecycle

/// Looks for due occurrences every `tick` (Protocol.md §12.3) and runs each claimed one in its
/// own child task, so a long migration does not hold the others up.
struct ScheduleService: Service {
    let runner: ScheduleRunner
    var tick: Duration = .seconds(1)

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [runner, tick] in
            try await withThrowingDiscardingTaskGroup { group in
                while !Task.isCancelled {
                    for (schedule, index) in await runner.tick() {
                        group.addTask { await runner.execute(schedule, index) }
                    }
                    try await Task.sleep(for: tick)
                }
            }
        }
    }
}
