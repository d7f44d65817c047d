import ControlAPI
import CoreMetrics
import MeshTime

/// What the migration shell reports through swift-metrics (the agent's Prometheus endpoint
/// publishes them when `metrics_listen` is set; otherwise they go nowhere). Names follow the
/// Prometheus conventions: base units, `_total` for counters.
enum MigrationMetrics {
    /// How one migration ended on this host, as its `result` label says.
    enum Result: String {
        /// The guest runs on the destination.
        case completed
        /// The destination refused it (admission), or it failed before the switchover: the guest
        /// stays on the source.
        case failed
        /// Its outcome is not known yet (the guest is paused until the peer answers).
        case inDoubt = "in_doubt"
        /// Refused before it began: the host's limit was reached and it was not to wait (`--no-queue`).
        case refused
        /// Dropped from the queue: its VM was stopped, moved or deleted while it waited.
        case dropped
    }

    static let migrations = "hostmesh_migrations_total"
    static let downtime = "hostmesh_migration_downtime_seconds"
    static let duration = "hostmesh_migration_duration_seconds"
    static let bytes = "hostmesh_migration_bytes_total"
    static let queueWait = "hostmesh_migration_queue_wait_seconds"
    static let destinationBusy = "hostmesh_migration_destination_busy_total"

    /// A migration of `role` ("source" or "destination") ended with `result`.
    static func ended(_ result: Result, role: String) {
        CoreMetrics.Counter(label: migrations, dimensions: [("role", role), ("result", result.rawValue)]).increment()
    }

    /// A migration this host sent completed with `report`'s figures.
    static func completed(_ report: MigrationReport) {
        ended(.completed, role: "source")
        CoreMetrics.Timer(label: downtime).recordNanoseconds(max(0, report.downtimeMs) * 1_000_000)
        CoreMetrics.Timer(label: duration).recordNanoseconds(max(0, report.totalMs) * 1_000_000)
        CoreMetrics.Counter(label: bytes, dimensions: [("direction", "out")]).increment(by: Int(clamping: max(0, report.transferredBytes)))
    }

    /// A migration waited `wait` in this host's queue before it began (zero when a slot was free).
    static func waited(_ wait: Duration) {
        CoreMetrics.Timer(label: queueWait).recordNanoseconds(wait.wholeNanoseconds)
    }

    /// A destination answered busy (at its incoming limit) and the migration will ask again.
    static func busyAnswered() {
        CoreMetrics.Counter(label: destinationBusy).increment()
    }
}
