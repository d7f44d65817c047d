public import MeshWire

/// The evidence a handover carries for the destination's epoch (Protocol.md §6.12): at
/// `committing` the source signs its handover statement, which travels in the commit and is
/// journaled by the destination with the VM, so that the destination's ownership record can fence
/// the source's copy (and only a record with such evidence can). Implemented by the agent, which
/// holds the host's key and the VM rows' evidence.
public protocol MigrationHandoverEvidence: Sendable {
    /// Source, at `committing`: the links that lead to this host's `epoch` of `vm`, then this
    /// host's signed statement handing it to `destination` at `epoch + 1` in `migration`.
    /// Throwing sends the commit without evidence: the destination's record then fences nothing,
    /// the safe side (an in-doubt source settles with its destination, §6.5).
    func commitEvidence(vm: String, epoch: Int64, to destination: String, migration: String) async throws -> [Hostmesh_V1_OwnershipEvidenceLink]
}

/// No evidence: commits carry none (a coordinator outside an agent, tests of the core shell).
public struct NoMigrationHandoverEvidence: MigrationHandoverEvidence {
    /// Nothing to configure.
    public init() {}

    public func commitEvidence(vm: String, epoch: Int64, to destination: String, migration: String) async throws -> [Hostmesh_V1_OwnershipEvidenceLink] { [] }
}
