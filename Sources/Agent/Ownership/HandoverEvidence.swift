import Foundation
import GRDB
import MeshIdentity
import MeshWire
import MigrationService
import SecureChannel

/// This host's side of ownership evidence (Protocol.md §6.12): it signs the handover statement
/// of a VM it hands over at a migration's commit, after the links that led to its own epoch,
/// and it checks a destination's evidence before journaling it with the VM.
struct HandoverEvidence: MigrationHandoverEvidence {
    let store: AgentStore
    let credentials: ChannelCredentials

    var hostID: String { credentials.identity.hostID }

    func commitEvidence(vm: String, epoch: Int64, to destination: String, migration: String) async throws -> [Hostmesh_V1_OwnershipEvidenceLink] {
        let held = try await store.database.read { db in try StoredVM.fetchOne(db, key: vm)?.evidence }
        return try chain(after: held, vm: vm, epoch: epoch, to: destination, migration: migration)
    }

    /// The links `held` (this host's evidence for `epoch`), then this host's signed statement
    /// handing `vm` at `epoch` to `destination` at `epoch + 1` in `migration`.
    func chain(after held: Data?, vm: String, epoch: Int64, to destination: String, migration: String) throws -> [Hostmesh_V1_OwnershipEvidenceLink] {
        let statement = try HandoverStatement.sign(vm: vm, epoch: UInt64(epoch), to: destination, migration: migration,
                                                   at: Int64(Date().timeIntervalSince1970),
                                                   identity: credentials.identity, certificate: credentials.certificate)
        return OwnershipEvidenceChain.extending(OwnershipEvidenceChain.decode(held), with: OwnershipEvidence.handover(statement).wire)
    }

    /// What a destination keeps of a commit's evidence: all of it when the last link is
    /// `source`'s statement handing `vm` to this host at `epoch` in `migration` and it verifies;
    /// otherwise nothing (the reason is returned to be logged): the record then fences nothing.
    static func accepted(_ evidence: [Hostmesh_V1_OwnershipEvidenceLink], vm: String, epoch: Int64, source: String, migration: String,
                         hostID: String, trust: TrustStore?) -> (kept: Data?, refusal: String?) {
        guard let last = evidence.last else { return (nil, "the commit carries no evidence") }
        guard evidence.count <= OwnershipEvidenceCheck.maxLinks else { return (nil, "the commit carries more than \(OwnershipEvidenceCheck.maxLinks) links") }
        let link: OwnershipEvidence
        do { link = try OwnershipEvidence(wire: last) } catch { return (nil, "\(error)") }
        guard case .handover(let statement) = link else { return (nil, "the commit's last link is not the source's handover statement") }
        guard statement.vmID == vm, statement.body.migrationID == migration, statement.from == OwnershipPoint(owner: source, epoch: UInt64(epoch - 1)),
              statement.to == OwnershipPoint(owner: hostID, epoch: UInt64(epoch)) else {
            return (nil, "the statement hands \(statement.vmID) from \(statement.from) to \(statement.to) in \(statement.body.migrationID), not this migration's \(source)@\(epoch - 1) -> \(hostID)@\(epoch)")
        }
        if let trust {
            do { try trust.verify(statement) } catch { return (nil, "\(error)") }
        }
        return (OwnershipEvidenceChain.encode(evidence), nil)
    }
}
