import ControlAPI
import Foundation
import GRDB
import Hypervisor
import CoreMetrics
import Logging
import MeshIdentity
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
    /// The trust store handover statements verify under (Protocol.md §6.12); nil: none verifies,
    /// so no record fences (fail closed).
    var trust: TrustStore? = nil

    /// Every record this host can vouch for or has heard, newest epoch per VM.
    func records() async throws -> [Hostmesh_V1_OwnershipRecord] {
        try await store.database.read { db in
            var out: [String: Hostmesh_V1_OwnershipRecord] = [:]
            for row in try StoredOwnership.fetchAll(db) {
                var r = Hostmesh_V1_OwnershipRecord()
                r.vmID = row.vmId; r.owner = row.owner; r.epoch = UInt64(row.epoch)
                r.leaseDirectory = row.leaseDirectory ?? ""
                r.evidence = OwnershipEvidenceChain.decode(row.evidence)
                out[row.vmId] = r
            }
            for vm in try StoredVM.fetchAll(db) where vm.hold == nil {
                if let known = out[vm.id], known.epoch > UInt64(vm.epoch) { continue }
                var r = Hostmesh_V1_OwnershipRecord()
                r.vmID = vm.id; r.owner = hostID; r.epoch = UInt64(vm.epoch)
                r.evidence = OwnershipEvidenceChain.decode(vm.evidence)
                // A spec that does not decode, or a VM not on shared storage: no lease to name.
                if leases, let spec = try? vm.decodedSpec(), let directory = try? LeaseFiles.directory(for: spec) {
                    r.leaseDirectory = directory
                }
                out[vm.id] = r
            }
            return out.values.sorted { $0.vmID < $1.vmID }
        }
    }

    /// What applying a peer's records did.
    struct Applied: Sendable {
        /// VMs this host holds with a lower epoch than a record whose evidence leads from this
        /// host's copy to it (Protocol.md §6.12): stale copies that must not run.
        var stale: [String] = []
        /// Records above a copy held here whose evidence does not lead from it: dropped (not
        /// kept, not passed on, nothing fenced), with the reason.
        var dropped: [(vm: String, owner: String, epoch: UInt64, reason: String)] = []
    }

    /// Records heard from agent `sender` (authenticated by its channel).
    ///
    /// A record above the epoch of a VM this host holds fences that copy only when its evidence
    /// leads from this host's point to the record's (`OwnershipEvidenceCheck`, Protocol.md
    /// §6.12): a certified member can no longer pause VMs it does not own by claiming a higher
    /// epoch. A record that does not is dropped (not kept, so it neither hides this host's own
    /// record nor reaches others through this host), counted and returned with its reason.
    /// Records of VMs this host does not hold are kept as before (§6.6), with their evidence.
    ///
    /// A record of the same owner and epoch as the one known changes only its lease directory,
    /// and only when the owner itself sends it (Protocol.md §6.6): relayed copies may be older
    /// than the owner's word (a migration's source records its release without the directory),
    /// and letting them win would make the lease directory flip with every relay. It also brings
    /// evidence to a known record that had none.
    func apply(_ records: [Hostmesh_V1_OwnershipRecord], from sender: String) async throws -> Applied {
        // A VM id names lease and spec files (§9.2): one that is not a valid id never gets that far.
        let invalid = records.filter { !VMSpec.isValidID($0.vmID) }
        if !invalid.isEmpty {
            logger.warning("ownership records dropped: their VM id is not valid (1-64 letters, digits, '-', '_')", metadata: [
                "mesh.peer": "\(sender)", "vm.ids": "\(invalid.prefix(8).map { String($0.vmID.prefix(80)).debugDescription })", "vm.count": "\(invalid.count)"])
        }
        let records = invalid.isEmpty ? records : records.filter { VMSpec.isValidID($0.vmID) }

        let applied = try await store.database.write { [trust, hostID] db -> Applied in
            var applied = Applied()
            for record in records where record.owner != hostID {
                // A record no real epoch can match is nonsense: dropped, never a trap.
                guard let epoch = try? wireEpoch(record.epoch, "epoch") else {
                    applied.dropped.append((record.vmID, record.owner, record.epoch, "epoch \(record.epoch) is not a valid epoch"))
                    continue
                }
                if let mine = try StoredVM.fetchOne(db, key: record.vmID), mine.epoch < epoch {
                    let verdict = Self.check(record, against: mine, hostID: hostID, trust: trust)
                    guard case .fence = verdict else {
                        if case .refused(let reason) = verdict { applied.dropped.append((record.vmID, record.owner, record.epoch, reason)) }
                        continue
                    }
                    applied.stale.append(record.vmID)
                    try db.execute(sql: "UPDATE vm SET hold = ? WHERE id = ?",
                                   arguments: ["\(record.owner) owns this VM at epoch \(epoch), above this copy's \(mine.epoch): this copy is stale and must not run", record.vmID])
                }
                let known = try StoredOwnership.fetchOne(db, key: record.vmID)
                let evidence = OwnershipEvidenceChain.encode(record.evidence)
                if known == nil || known!.epoch < epoch
                    || (known!.epoch == epoch && known!.owner == record.owner && record.owner == sender
                        && (known!.leaseDirectory ?? "") != record.leaseDirectory)
                    || (known!.epoch == epoch && known!.owner == record.owner && known!.evidence == nil && evidence != nil) {
                    let leaseDirectory = record.owner == sender || known == nil || known!.epoch < epoch || known!.owner != record.owner
                        ? record.leaseDirectory : (known!.leaseDirectory ?? "")
                    try StoredOwnership(vmId: record.vmID, owner: record.owner, epoch: epoch, updatedAt: Date().timeIntervalSince1970,
                                        leaseDirectory: leaseDirectory.isEmpty ? nil : leaseDirectory,
                                        evidence: evidence ?? known.flatMap { $0.epoch == epoch && $0.owner == record.owner ? $0.evidence : nil }).save(db)
                }
            }
            return applied
        }
        for drop in applied.dropped {
            CoreMetrics.Counter(label: Self.droppedRecords, dimensions: [("reason", drop.reason.contains("carries no evidence") ? "no_evidence" : "evidence_refused")])
                .increment()
            logger.warning("ownership record dropped: its evidence does not lead from this host's copy, which keeps running", metadata: [
                "mesh.peer": "\(sender)", "vm.id": "\(drop.vm)", "vm.owner": "\(drop.owner)", "vm.epoch": "\(drop.epoch)", "mesh.reason": "\(drop.reason)"])
        }
        return applied
    }

    /// Counter of records dropped because their evidence does not fence (Protocol.md §6.12), by reason.
    static let droppedRecords = "hostmesh_ownership_records_dropped_total"

    /// Whether `record` fences this host's copy `mine` (Protocol.md §6.12). Handover statements
    /// verify under this host's trust store (none: refused, fail closed); a lease claim is read
    /// from this copy's own lease directory on the shared storage, never from one the record names
    /// elsewhere (a member could name a directory where it can write a claim).
    static func check(_ record: Hostmesh_V1_OwnershipRecord, against mine: StoredVM, hostID: String, trust: TrustStore?) -> OwnershipEvidenceCheck.Verdict {
        var links: [OwnershipEvidence] = []
        for wire in record.evidence {
            do { links.append(try OwnershipEvidence(wire: wire)) } catch { return .refused("a link of the evidence does not decode: \(error)") }
        }
        // A spec that does not decode, or a VM not on shared storage: no lease directory, so no claim verifies (fail closed).
        let ownDirectory = (try? mine.decodedSpec()).flatMap { try? LeaseFiles.directory(for: $0) }
        return OwnershipEvidenceCheck.check(
            vm: record.vmID, held: OwnershipPoint(owner: hostID, epoch: UInt64(mine.epoch)),
            claimed: OwnershipPoint(owner: record.owner, epoch: record.epoch), evidence: links,
            verifyHandover: { statement in
                guard let trust else { throw IdentityError.evidenceRefused("this host has no trust store to verify statements with") }
                try trust.verify(statement)
            },
            readClaim: { directory, vm, epoch in
                guard directory == ownDirectory else { return nil }
                return LeaseFiles(directory: directory).claimant(vm: vm, epoch: Int64(epoch))
            })
    }

    /// The highest epoch someone else is known to hold for `vm`, if any.
    func newerOwner(of vm: String, above epoch: Int64) async throws -> StoredOwnership? {
        try await store.database.read { db in
            guard let row = try StoredOwnership.fetchOne(db, key: vm), row.epoch > epoch, row.owner != hostID else { return nil }
            return row
        }
    }
}
