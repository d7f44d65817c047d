public import Hypervisor

/// `vm show`: the info, the spec and the migration history.
public struct VMDetails: Codable, Sendable {
    /// Summary, as `vm list` shows it.
    public var info: VMInfo
    /// The spec the agent stored at `vm.create` (or received with a migration).
    public var spec: VMSpec
    /// Migrations this host took part in, newest first.
    public var migrations: [MigrationRecord]
    /// Whether the VM could be restarted on another host if this one died, and if not why
    /// (Protocol.md §9.2); nil from agents that do not say.
    public var restartElsewhere: String?

    /// The parts of `vm show`.
    public init(info: VMInfo, spec: VMSpec, migrations: [MigrationRecord], restartElsewhere: String? = nil) {
        self.info = info
        self.spec = spec
        self.migrations = migrations
        self.restartElsewhere = restartElsewhere
    }
}
