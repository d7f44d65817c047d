/// One migration, as `vm show` and `hostmesh migrations` print it.
public struct MigrationRecord: Codable, Sendable, Equatable {
    /// Migration id.
    public var id: String
    /// VM name.
    public var vm: String
    /// "source" or "destination": this host's part.
    public var role: String
    /// The other host's id.
    public var peer: String
    /// Last phase journaled (Protocol.md §6).
    public var phase: String
    /// Unix seconds.
    public var startedAt: Double
    /// Unix seconds; nil while the migration runs (or is in doubt).
    public var endedAt: Double?
    /// Figures; nil unless it completed on the source.
    public var report: MigrationReport?
    /// Why it failed; nil unless it failed.
    public var error: String?
    /// Its place in this host's queue of outgoing migrations (1 = next), with phase "queued";
    /// nil once it started or when it never waited (Protocol.md §6.4, busy and the queue).
    public var queuePosition: Int?

    /// The fields as named; the optional ones default to nil (still running, no report, no error).
    public init(id: String, vm: String, role: String, peer: String, phase: String, startedAt: Double,
                endedAt: Double? = nil, report: MigrationReport? = nil, error: String? = nil, queuePosition: Int? = nil) {
        self.id = id
        self.vm = vm
        self.role = role
        self.peer = peer
        self.phase = phase
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.report = report
        self.error = error
        self.queuePosition = queuePosition
    }
}
