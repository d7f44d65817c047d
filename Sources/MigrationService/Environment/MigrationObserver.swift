public import ControlAPI
public import Migration

/// A point in a migration that an observer can see: right after a phase was journaled, after the
/// source released its copy, or before recovery of an unfinished migration.
public enum MigrationPoint: Hashable, Sendable, CustomStringConvertible {
    /// The source journaled this phase.
    case source(SourceMigration.Phase)
    /// The source released its copy.
    case sourceReleased
    /// The destination journaled this phase.
    case destination(DestinationMigration.Phase)
    /// Recovery is about to finish or roll back an unfinished migration of this role.
    case recovery(MigrationRole)
    /// A storage move on one host (Protocol.md §6.8) journaled this phase (`copying`,
    /// `pivoting`, `switched`): not a migration, but the same hooks let a test kill the agent there.
    case storageMove(String)
    /// The source's disk mirrors run (started, not yet synchronised: their NBD streams are
    /// open and copying); not a journaled phase, the source is `mirroring` (§6.7).
    case sourceMirrorsRunning
    /// The source QEMU paused at the switchover (`pre-switchover`, the guest stopped) and the
    /// mirrors are about to complete; not a journaled phase, the source is `transferring` (§6.7).
    case sourceSwitchover
    /// A placed start's handover on the host receiving it (Protocol.md §10.10): `received` (the
    /// offer arrived, nothing stored yet), `stored` (the VM's row stored here, not yet started).
    /// Not a migration, but the same hooks let a test stop or kill the agent there.
    case placedStart(String)

    /// `<role>:<phase>`, e.g. `source:committing`, `destination:committed`, `recovery:source`.
    public var description: String {
        switch self {
        case .source(let phase): return "source:\(phase.rawValue)"
        case .sourceReleased: return "source:released"
        case .destination(let phase): return "destination:\(phase.rawValue)"
        case .recovery(let role): return "recovery:\(role.rawValue)"
        case .storageMove(let phase): return "storage:\(phase)"
        case .sourceMirrorsRunning: return "source:mirrors-running"
        case .sourceSwitchover: return "source:switchover"
        case .placedStart(let phase): return "placed-start:\(phase)"
        }
    }
}

/// Sees a migration's points as they pass. Production uses `NoMigrationObserver`; the fault
/// matrix's observer pauses at a point (so a test can kill something there) or cuts the channel.
public protocol MigrationObserver: Sendable {
    /// Called at `point`; may suspend (the migration waits).
    func reached(_ point: MigrationPoint) async
    /// True when the control channel to the peer should be cut at `point`.
    func cutsChannel(at point: MigrationPoint) -> Bool
    /// Called at `point` of migration `migration` of VM `vm` (id and name), whose other side is
    /// `peer` (host id, or the address it was reached at). The default calls `reached(_:)`.
    func reached(_ point: MigrationPoint, migration: String, vm: String, name: String, peer: String) async
    /// Called with each progress line of outgoing migration `migration` (what `migrate` streams
    /// to its caller), whoever started it: the command line, DRS, maintenance or a schedule.
    /// Must not suspend for long: the migration's progress reporting waits. The default ignores it.
    func progressed(_ update: MigrationProgressUpdate, migration: String, vm: String, name: String, peer: String) async
}

extension MigrationObserver {
    public func reached(_ point: MigrationPoint, migration: String, vm: String, name: String, peer: String) async {
        await reached(point)
    }

    public func progressed(_ update: MigrationProgressUpdate, migration: String, vm: String, name: String, peer: String) async {}
}

/// The observer that sees nothing.
public struct NoMigrationObserver: MigrationObserver {
    /// The production observer.
    public init() {}
    public func reached(_ point: MigrationPoint) async {}
    public func cutsChannel(at point: MigrationPoint) -> Bool { false }
}
