import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MeshIdentity
import MeshWire

/// Restart elsewhere (Protocol.md §9.2, "Taker"): what the takeover supervisor (Agent/HA) asks
/// of this host's VMs once it holds the claim of a VM whose owner's lease expired.
extension VMManager {
    /// Journals VM `spec` as this host's at `epoch` (taken over from `owner`), then starts it from
    /// its disks under a lease of its own: the row first (one transaction), then the lease keeper
    /// at `epoch` (it refuses under a claim above `epoch`), then QEMU.
    ///
    /// - Throws: `ControlError.conflict` when the VM is busy or already runs here, another VM here
    ///   has its name, this host's row or a known record is at `epoch` or above, or the host is in
    ///   maintenance; the start's errors otherwise (the row then keeps why in `restartFailure`).
    func takeOver(_ spec: VMSpec, epoch: Int64, from owner: String) async throws {
        try refuseInMaintenance("taking \(spec.name) over")
        guard leaseKeeping != nil, let leaseDirectory = try? LeaseFiles.directory(for: spec) else { // not eligible: the claim would have been refused
            throw ControlError.conflict("\(spec.name) cannot be taken over here: this host runs no leases, or the VM is not on shared storage")
        }
        try mark(spec.id, .takingOver, name: spec.name)
        defer { if busy[spec.id] == .takingOver { busy[spec.id] = nil } }
        if let process = processes[spec.id], await process.exitIfEnded() == nil {
            throw ControlError.conflict("\(spec.name) already runs on this host")
        }
        let spec = AgentNetwork.localize(spec, directory: directory(for: spec.id))
        let reason = "taken over from \(owner): its lease expired"
        let now = Date().timeIntervalSince1970
        let record = try StoredVM(spec: spec, desiredState: "running", epoch: epoch)
        try await store.database.write { [hostID = leaseKeeping?.hostID ?? ""] db in
            // The evidence for this epoch (Protocol.md §6.12): the links of the record this host
            // knew (the previous owner's), then its claim, which a holder reads on the storage.
            var claim = Hostmesh_V1_OwnershipLeaseClaim()
            claim.vmID = spec.id
            claim.owner = hostID
            claim.epoch = UInt64(epoch)
            claim.leaseDirectory = leaseDirectory
            var link = Hostmesh_V1_OwnershipEvidenceLink()
            link.leaseClaim = claim
            let before = try StoredOwnership.fetchOne(db, key: spec.id)?.evidence ?? StoredVM.fetchOne(db, key: spec.id)?.evidence
            let evidence = OwnershipEvidenceChain.encode(OwnershipEvidenceChain.extending(OwnershipEvidenceChain.decode(before), with: link))
            if let other = try StoredVM.filter(Column("name") == spec.name).fetchOne(db), other.id != spec.id {
                throw ControlError.conflict("another VM named \(spec.name) (\(other.id)) exists on this host")
            }
            if try StoredOwnership.filter(Column("vmId") == spec.id && Column("owner") != hostID && Column("epoch") >= epoch).fetchCount(db) > 0 {
                throw ControlError.conflict("another host owns \(spec.name) at epoch \(epoch) or above")
            }
            if let mine = try StoredVM.fetchOne(db, key: spec.id) {
                // A row of an earlier life here (this host owned the VM once): it moves up, never down.
                guard mine.epoch < epoch else { throw ControlError.conflict("this host's row of \(spec.name) is at epoch \(mine.epoch), not below \(epoch)") }
                try db.execute(sql: """
                    UPDATE vm SET spec = ?, desiredState = 'running', epoch = ?, hold = NULL, restartFailure = NULL,
                      restarts = restarts + 1, lastRestartReason = ?, lastRestartAt = ?, updatedAt = ?, evidence = ? WHERE id = ?
                    """, arguments: [record.spec, epoch, reason, now, now, evidence, spec.id])
            } else {
                var row = record
                row.restarts = 1
                row.lastRestartReason = reason
                row.lastRestartAt = now
                row.evidence = evidence
                try row.insert(db)
            }
        }
        logger.notice("took a VM over: journaled", metadata: ["vm.id": "\(spec.id)", "vm.epoch": "\(epoch)", "vm.owner": "\(owner)"])
        if let dead = processes.removeValue(forKey: spec.id) { await dead.qmp.close() }
        do {
            try await network?.attach(spec)
            try await startLeaseKeeper(spec, epoch: epoch)
            processes[spec.id] = try await launchControlled(spec, options: launchOptions(for: spec))
            problems[spec.id] = nil
        } catch {
            // The keeper stays: its lease (held, then stale) keeps other hosts from a second
            // takeover of this epoch; the claim is this host's anyway.
            throw ControlError.failed("cannot start \(spec.name) after taking it over: \(error)")
        }
    }

    /// Records why a VM whose claim this host won is not running (`vm list` shows it failed).
    func noteTakeoverFailure(_ id: String, epoch: Int64, reason: String) async {
        do {
            try await store.database.write { db in
                try db.execute(sql: "UPDATE vm SET restartFailure = ?, updatedAt = ? WHERE id = ? AND epoch = ?",
                               arguments: ["taking it over failed: " + reason, Date().timeIntervalSince1970, id, epoch])
            }
        } catch {
            // The VM stays down either way (the safe side); only the report lacks the reason.
            logger.error("cannot record why a VM taken over is not running", metadata: ["vm.id": "\(id)", "error": "\(error)"])
        }
    }
}
