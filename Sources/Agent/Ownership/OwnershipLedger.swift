import Foundation
import GRDB
import Logging
import MeshWire

/// What this host knows about VM ownership (Protocol.md §6.6): the VMs it owns (in the `vm`
/// table, with their epochs) and the newest record it heard for every other VM (`ownership`).
/// A host MUST NOT resume a VM when it knows a record for it with a higher epoch: its copy is stale.
struct OwnershipLedger: Sendable {
    let store: AgentStore
    let hostID: String
    let logger: Logger
    /// Whether this host runs its VMs on shared storage under leases (Protocol.md §9.2): its
    /// records of such VMs then name their lease directory, so that other hosts can watch them.
    var leases = false

    /// Every record this host can vouch for or has heard, newest epoch per VM.
    func records() async throws -> [Hostmesh_V1_OwnershipRecord] {
        try await store.database.read { db in
            var out: [String: Hostmesh_V1_OwnershipRecord] = [:]
            for row in try StoredOwnership.fetchAll(db) {
                var r = Hostmesh_V1_OwnershipRecord()
                r.vmID = row.vmId; r.owner = row.owner; r.epoch = UInt64(row.epoch)
                r.leaseDirectory = row.leaseDirectory ?? ""
                out[row.vmId] = r
            }
            for vm in try StoredVM.fetchAll(db) where vm.hold == nil {
                if let known = out[vm.id], known.epoch > UInt64(vm.epoch) { continue }
                var r = Hostmesh_V1_OwnershipRecord()
                r.vmID = vm.id; r.owner = hostID; r.epoch = UInt64(vm.epoch)
                // A spec that does not decode, or a VM not on shared storage: no lease to name.
                if leases, let spec = try? vm.decodedSpec(), let directory = try? LeaseFiles.directory(for: spec) {
                    r.leaseDirectory = directory
                }
                out[vm.id] = r
            }
            return out.values.sorted { $0.vmID < $1.vmID }
        }
    }

    /// Records heard from agent `sender` (authenticated by its channel). Returns the VMs this
    /// host holds with a lower epoch than someone else's record: stale copies that must not run.
    ///
    /// A record of the same owner and epoch as the one known changes only its lease directory,
    /// and only when the owner itself sends it (Protocol.md §6.6): relayed copies may be older
    /// than the owner's word (a migration's source records its release without the directory),
    /// and letting them win would make the lease directory flip with every relay.
    @discardableResult
    func apply(_ records: [Hostmesh_V1_OwnershipRecord], from sender: String) async throws -> [String] {
        try await store.database.write { db in
            var stale: [String] = []
            for record in records where record.owner != hostID {
                let epoch = Int64(record.epoch)
                if let mine = try StoredVM.fetchOne(db, key: record.vmID), mine.epoch < epoch {
                    stale.append(record.vmID)
                    try db.execute(sql: "UPDATE vm SET hold = ? WHERE id = ?",
                                   arguments: ["\(record.owner) owns this VM at epoch \(epoch), above this copy's \(mine.epoch): this copy is stale and must not run", record.vmID])
                }
                let known = try StoredOwnership.fetchOne(db, key: record.vmID)
                if known == nil || known!.epoch < epoch
                    || (known!.epoch == epoch && known!.owner == record.owner && record.owner == sender
                        && (known!.leaseDirectory ?? "") != record.leaseDirectory) {
                    try StoredOwnership(vmId: record.vmID, owner: record.owner, epoch: epoch, updatedAt: Date().timeIntervalSince1970,
                                        leaseDirectory: record.leaseDirectory.isEmpty ? nil : record.leaseDirectory).save(db)
                }
            }
            return stale
        }
    }

    /// The highest epoch someone else is known to hold for `vm`, if any.
    func newerOwner(of vm: String, above epoch: Int64) async throws -> StoredOwnership? {
        try await store.database.read { db in
            guard let row = try StoredOwnership.fetchOne(db, key: vm), row.epoch > epoch, row.owner != hostID else { return nil }
            return row
        }
    }
}
