public import ControlAPI

/// What the dashboard shows, read from the local agent through its control socket: the same
/// answers `hostmesh members`, `vm list`, `migrations`, `drs status`, `drs recommendations` and
/// `host maintenance status` print. Sent to the page as the `state` event (JSON).
public struct MeshSnapshot: Codable, Sendable {
    /// This agent's host id and software.
    public var host: String
    public var software: String
    public var members: [MemberRow]
    /// Every VM the mesh reports, with its host (DRS's view).
    public var vms: [DRSTypes.MeshVM]
    /// This host's own VMs, in the agent's detail (state, vCPUs, problem).
    public var localVMs: [VMInfo]
    /// This host's migration history, newest first.
    public var migrations: [MigrationRecord]
    /// DRS settings and loads; nil with the reason in `problems` when the agent could not answer.
    public var drs: DRSTypes.Status?
    public var recommendations: [DRSTypes.Recommendation]
    /// Maintenance of each member that is not in service.
    public var maintenance: [DRSTypes.MaintenanceStatus]
    /// Migrations started from this dashboard, with their last progress.
    public var operations: [DashboardOperation]
    /// Every migration this host took part in since the dashboard started (the newest 20),
    /// wherever it was started, from the agent's events.
    public var live: [LiveMigration]
    /// Questions the agent could not answer, each with its error (shown on the page).
    public var problems: [String]
}

/// A migration started from the dashboard: its last progress line and how it ended.
public struct DashboardOperation: Codable, Sendable, Equatable {
    /// The dashboard's id for it (`op-N`).
    public var id: String
    public var vm: String
    /// What the operator chose: `auto` or a host id.
    public var to: String
    /// `running`, `done` or `failed`.
    public var state: String
    public var progress: MigrationProgressUpdate?
    public var report: MigrationReport?
    public var error: String?
}
