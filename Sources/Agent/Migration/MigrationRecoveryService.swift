import MigrationService
import ServiceLifecycle

/// Finishes or rolls back the migrations a previous run of the agent left under way
/// (`MigrationCoordinator.recover`), then keeps asking the destinations of in-doubt handovers
/// (`retryInDoubt`) until graceful shutdown or cancellation.
///
/// A graceful shutdown lets recovery finish (each step is bounded by the peer's timeouts, and
/// stopping halfway only means doing it again at the next start) but ends the retry loop at once:
/// an in-doubt VM stays paused and is asked about again by the next agent.
struct MigrationRecoveryService: Service {
    let coordinator: MigrationCoordinator
    /// The unfinished migrations `prepareRecovery` found (their VMs are off limits until recovered).
    let unfinished: [JournaledMigration]

    func run() async throws {
        await coordinator.recover(unfinished)
        // The retry loop ends when cancelled; it never throws.
        // (Its interval is the coordinator's `inDoubtRetryInterval`.)
        await cancelWhenGracefulShutdown { [coordinator] in
            await coordinator.retryInDoubt()
        }
    }
}
