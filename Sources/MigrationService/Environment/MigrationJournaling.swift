public import Hypervisor
public import MeshWire
public import Migration

/// Which side of a migration a host is.
public enum MigrationRole: String, Sendable, Codable {
    /// The host the VM leaves.
    case source
    /// The host the VM goes to.
    case destination
}

/// One migration as the journal holds it.
public struct JournaledMigration: Sendable, Equatable {
    /// Migration id.
    public var id: String
    /// The VM's id.
    public var vmID: String
    /// The VM's name.
    public var vmName: String
    /// This host's side.
    public var role: MigrationRole
    /// The other host: its host id once known, else the address it was reached at.
    public var peer: String
    /// The address the source first reached the destination at (source rows only).
    public var peerAddress: String?
    /// The last phase journaled (a `SourceMigration.Phase` or `DestinationMigration.Phase` raw value).
    public var phase: String
    /// The VM's ownership epoch the migration started from (source) or hands over (destination).
    public var epoch: Int64?
    /// Why it failed, if it did.
    public var error: String?
    /// True once the migration has ended (nothing left to recover).
    public var ended: Bool

    /// A journal row.
    public init(id: String, vmID: String, vmName: String, role: MigrationRole, peer: String, peerAddress: String?,
                phase: String, epoch: Int64?, error: String?, ended: Bool) {
        self.id = id
        self.vmID = vmID
        self.vmName = vmName
        self.role = role
        self.peer = peer
        self.peerAddress = peerAddress
        self.phase = phase
        self.epoch = epoch
        self.error = error
        self.ended = ended
    }
}

/// Another host's claim on a VM, from the ownership records (Protocol.md §6.6).
public struct OwnershipClaim: Sendable, Equatable {
    /// The host that owns the VM.
    public var owner: String
    /// At which epoch.
    public var epoch: Int64

    /// A claim.
    public init(owner: String, epoch: Int64) {
        self.owner = owner
        self.epoch = epoch
    }
}

/// The durable records of migrations and ownership (Protocol.md §6.4): where the migration
/// state machines' `.journal` directives land. Every write MUST be durable when it returns
/// (a crash or power loss after it keeps it) and MUST throw when it is not; the executors turn a
/// throw into the machine's failure event, so a write that cannot be made is never acted on.
public protocol MigrationJournaling: Sendable {
    /// Source: the migration starts (`requested`) from `vm` at its epoch.
    func beginSource(id: String, vmID: String, vmName: String, epoch: Int64, peerAddress: String) async throws
    /// Source: a phase, with the peer's host id once known, the failure so far, the report.
    func setSourcePhase(_ id: String, _ phase: SourceMigration.Phase, peer: String?, error: String?, result: String?) async throws
    /// Source: hold the VM (an in-doubt handover); the guest stays paused until it is settled.
    func hold(vm: String, reason: String) async throws
    /// Source: the VM now belongs to `owner` at `epoch`; its row goes, the migration is done.
    func release(migration id: String, vm: String, to owner: String, epoch: Int64) async throws
    /// Source: the VM is this host's again at `epoch` (above the destination's); the hold clears.
    func reclaim(vm: String, epoch: Int64) async throws
    /// Destination: admitted, the VM to arrive at `epoch`.
    func beginDestination(id: String, spec: VMSpec, source: String, epoch: Int64) async throws
    /// Destination: the commit: the VM's row at `epoch` with the phase, in one transaction. The
    /// row keeps `evidence` (the commit's, Protocol.md §6.12) when its last link is `source`'s
    /// statement handing the VM to this host at `epoch` in this migration, and none otherwise.
    func commitDestination(id: String, spec: VMSpec, epoch: Int64, source: String, evidence: [Hostmesh_V1_OwnershipEvidenceLink]) async throws
    /// Destination: the guest runs here (the migration has ended).
    func setDestinationRunning(_ id: String) async throws
    /// Destination: discarded for `reason`, with the VM row its commit wrote if any, in one transaction.
    func discardDestination(id: String, vm: String, epoch: Int64, reason: String) async throws
    /// Migrations that have not ended, oldest first.
    func unfinished() async throws -> [JournaledMigration]
    /// One migration.
    func migration(_ id: String) async throws -> JournaledMigration?
    /// Who owns `vm` at an epoch above `epoch`, if anyone does (by the ownership records).
    func newerOwner(of vm: String, above epoch: Int64) async throws -> OwnershipClaim?
}
