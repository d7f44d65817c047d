/// Result of `query-migrate` as QEMU 7.2 sends it. Every field is optional: QEMU omits most of
/// them before the migration starts and some after it ends. `MigrationProgress` is the
/// digested form.
public struct MigrationInfo: Codable, Sendable, Equatable {
    /// RAM statistics (`MigrationStats`).
    public struct RAM: Codable, Sendable, Equatable {
        /// Bytes sent so far.
        public var transferred: Int64?
        /// Bytes still to send in this pass.
        public var remaining: Int64?
        /// Guest RAM size in bytes.
        public var total: Int64?
        /// Pages found to be zero (sent as a flag).
        public var duplicate: Int64?
        /// Pages sent in full.
        public var normal: Int64?
        /// Bytes of pages sent in full.
        public var normalBytes: Int64?
        /// Pages dirtied per second, measured at each dirty-bitmap sync.
        public var dirtyPagesRate: Int64?
        /// Throughput in megabits per second (QEMU's unit).
        public var mbps: Double?
        /// Dirty-bitmap syncs so far: the pre-copy iteration count.
        public var dirtySyncCount: Int64?
        /// Page faults served in post-copy.
        public var postcopyRequests: Int64?
        /// Target page size in bytes.
        public var pageSize: Int64?
        /// Bytes sent over multifd channels.
        public var multifdBytes: Int64?
        /// Pages sent per second.
        public var pagesPerSecond: Int64?
        /// Bytes sent while the guest was stopped.
        public var downtimeBytes: Int64?

        enum CodingKeys: String, CodingKey {
            case transferred, remaining, total, duplicate, normal, mbps
            case normalBytes = "normal-bytes"
            case dirtyPagesRate = "dirty-pages-rate"
            case dirtySyncCount = "dirty-sync-count"
            case postcopyRequests = "postcopy-requests"
            case pageSize = "page-size"
            case multifdBytes = "multifd-bytes"
            case pagesPerSecond = "pages-per-second"
            case downtimeBytes = "downtime-bytes"
        }
    }

    /// `none`, `setup`, `active`, `postcopy-active`, `completed`, `failed`, `cancelling`, `cancelled`, ...
    public var status: String?
    /// RAM statistics, present once the migration started.
    public var ram: RAM?
    /// Milliseconds spent in setup.
    public var setupTime: Int64?
    /// Milliseconds since the start (or total, once completed).
    public var totalTime: Int64?
    /// QEMU's estimate of the switchover pause at the current rate, ms (while active).
    public var expectedDowntime: Int64?
    /// The actual switchover pause, ms (once completed).
    public var downtime: Int64?
    /// Current vCPU throttle from auto-converge, percent.
    public var cpuThrottlePercentage: Int64?
    /// Why the migration failed.
    public var errorDesc: String?

    enum CodingKeys: String, CodingKey {
        case status, ram, downtime
        case setupTime = "setup-time"
        case totalTime = "total-time"
        case expectedDowntime = "expected-downtime"
        case cpuThrottlePercentage = "cpu-throttle-percentage"
        case errorDesc = "error-desc"
    }
}
