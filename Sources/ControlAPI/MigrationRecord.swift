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

    /// The fields as named; the optional ones default to nil (still running, no report, no error).
    public init(id: String, vm: String, role: String, peer: String, phase: String, startedAt: Double,
                endedAt: Double? = nil, report: MigrationReport? = nil, error: String? = nil) {
        self.id = id
        self.vm = vm
        self.role = role
        self.peer = peer
        self.phase = phase
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.report = report
        self.error = error
    }
}
