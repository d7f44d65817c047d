/// Histogram buckets for the duration metrics whose range the defaults (5 ms to 10 s) fit badly.
/// Keyed by metric name; the executable hands them to its `PrometheusMetricsFactory`.
public enum HistogramBuckets {
    /// Migration total time runs from a fraction of a second (an idle guest) to minutes (disks, long distance).
    static let migrationDuration: [Duration] = [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
                                                .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(900)]
    /// A journal write is one SQLite transaction with fsync: well under a millisecond to tens of ms.
    static let journalWrite: [Duration] = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                           .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)]
    /// The guest's pause: the target is tens of milliseconds.
    static let migrationDowntime: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                                .milliseconds(200), .milliseconds(300), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5)]

    /// By metric name.
    public static let byName: [String: [Duration]] = [
        "hostmesh_migration_duration_seconds": migrationDuration,
        "hostmesh_migration_downtime_seconds": migrationDowntime,
        "hostmesh_migration_queue_wait_seconds": migrationDuration,
        "hostmesh_journal_write_seconds": journalWrite,
    ]
}
