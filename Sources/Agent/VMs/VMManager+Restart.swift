import Foundation
import GRDB
import HA
import Hypervisor

/// Restart in place (Protocol.md §9.1): what the restart supervisor (Agent/HA) asks of the VMs.
/// Each step claims or re-reads the VM under its `busy` mark, so an operator's start or stop,
/// a migration or a fence that comes meanwhile either waits for it or withdraws the restart.
extension VMManager {
    /// A VM whose QEMU is gone though nobody asked it to go.
    struct UnexpectedExit: Sendable {
        let id: String
        let name: String
        /// The epoch the dead copy ran at.
        let epoch: Int64
        let exit: RestartExit
    }

    /// The VMs to restart: QEMU gone other than by a clean exit (status 0: the guest powered
    /// off, or QEMU was told to quit), wanted running, in no operation, not held, not given up,
    /// and restartable (`restart = on-failure` in the spec, or by `meshDefault` when it says
    /// nothing). A VM found dead at agent start is not among them: this host did not see it die,
    /// and may have been away while another host took it over.
    func unexpectedExits(meshDefault: VMSpec.RestartPolicy) async throws -> [UnexpectedExit] {
        var exits: [UnexpectedExit] = []
        for (id, process) in processes where busy[id] == nil {
            guard var exit = await process.exitIfEnded() else { continue }
            // Gone with its status unknown (not this agent's child): a QEMU its lease keeper
            // started, whose keeper says how it ended (a guest that powered off is no failure).
            if exit.status == .unknown, leaseKeeping != nil, (try? LeaseFiles.directory(for: process.record.spec)) != nil { // not eligible: no keeper
                guard let reported = keeperReportedExit(id) else { continue } // not yet: next round
                exit.status = reported
            }
            guard exit.status != .exited(0) else { continue }
            // Read under the same conditions after the suspension: the VM may have moved on.
            guard busy[id] == nil, processes[id] === process, restartsDue[id] == nil,
                  let vm = try await store.database.read({ db in try StoredVM.fetchOne(db, key: id) }) else { continue }
            // Its lease keeper killed it (the lease could not be renewed, or another host claimed
            // it): it must not come back here without an operator (Protocol.md §9.2).
            if let fenced = fencedByLease(id) {
                if vm.restartFailure == nil, vm.desiredState == "running" { try await giveUpRestart(id, reason: fenced) }
                continue
            }
            guard
                  vm.desiredState == "running", vm.hold == nil, vm.restartFailure == nil,
                  let spec = try? vm.decodedSpec(), // a spec that does not decode cannot be started again anyway
                  (spec.restart ?? meshDefault) == .onFailure else { continue }
            exits.append(UnexpectedExit(id: id, name: vm.name, epoch: vm.epoch, exit: Self.restartExit(exit.status)))
        }
        return exits
    }

    static func restartExit(_ status: VMExit.Status) -> RestartExit {
        switch status {
        case let .exited(code): return .exited(code: code)
        case let .signaled(signal): return .killed(signal: signal)
        case .unknown: return .vanished
        }
    }

    /// The supervisor will restart `id` after `wait` because of `reason` (shown by `vm list` meanwhile).
    func noteRestartDue(_ id: String, reason: String, after wait: Duration) { restartsDue[id] = (reason, ContinuousClock.now + wait) }

    /// Journals a restart (Protocol.md §9.1) and claims the VM for it: the row moves to
    /// `record.epoch` only if it still is at `record.previousEpoch`, wanted running, not held,
    /// not given up, and no other host is known to own it at that epoch or above. Returns false
    /// (nothing written, nothing claimed) when the VM moved on meanwhile.
    func journalRestart(_ id: String, _ record: RestartRecord, hostID: String) async throws -> Bool {
        restartsDue[id] = nil
        guard busy[id] == nil else { return false }
        busy[id] = .restarting
        // An operator started it again meanwhile: a second QEMU must not start beside it.
        if let process = processes[id], await process.exitIfEnded() == nil {
            busy[id] = nil
            return false
        }
        do {
            let reason = "\(record.reason)"
            let changed = try await store.database.write { db -> Bool in
                try db.execute(sql: """
                    UPDATE vm SET epoch = ?, restarts = restarts + 1, lastRestartReason = ?, lastRestartAt = ?, updatedAt = ?
                    WHERE id = ? AND epoch = ? AND desiredState = 'running' AND hold IS NULL AND restartFailure IS NULL
                      AND NOT EXISTS (SELECT 1 FROM ownership WHERE vmId = ? AND owner != ? AND epoch >= ?)
                    """, arguments: [record.epoch, reason, Date().timeIntervalSince1970, Date().timeIntervalSince1970,
                                     id, record.previousEpoch, id, hostID, record.epoch])
                return db.changesCount > 0
            }
            if !changed { busy[id] = nil }
            return changed
        } catch {
            busy[id] = nil
            throw error
        }
    }

    /// Starts the QEMU of a VM claimed by `journalRestart`, from its disks, at the journaled
    /// epoch; releases the claim whatever happens. Returns false when the row no longer is at
    /// `epoch` or is held (nothing started).
    func relaunch(_ id: String, epoch: Int64) async throws -> Bool {
        defer { if busy[id] == .restarting { busy[id] = nil } }
        guard busy[id] == .restarting, let vm = try await store.database.read({ db in try StoredVM.fetchOne(db, key: id) }),
              vm.epoch == epoch, vm.hold == nil, vm.desiredState == "running" else { return false }
        let spec = try vm.decodedSpec()
        if let dead = processes.removeValue(forKey: id) { await dead.qmp.close() }
        try await network?.attach(spec)
        try await startLeaseKeeper(spec, epoch: epoch) // a new keeper at the new epoch (§9.2)
        do {
            processes[id] = try await launchControlled(spec, options: launchOptions(for: spec))
        } catch {
            await stopLeaseKeeper(id)
            throw error
        }
        problems[id] = nil
        // Fenced while QEMU was starting: it must not run.
        if try await find(id).hold != nil, let process = processes[id] {
            process.kill()
            await process.stop(quitGrace: .milliseconds(200))
            return false
        }
        return true
    }

    /// Records that this host stopped restarting `id` and why; the VM stays down.
    func giveUpRestart(_ id: String, reason: String) async throws {
        restartsDue[id] = nil
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET restartFailure = ?, updatedAt = ? WHERE id = ? AND desiredState = 'running'",
                           arguments: [reason, Date().timeIntervalSince1970, id])
        }
    }

    /// What `vm show` says about restarting the VM on another host (Protocol.md §9.2).
    static func restartElsewhere(_ spec: VMSpec, leases: Bool, restartDefault: VMSpec.RestartPolicy) -> String {
        do {
            let directory = try LeaseFiles.directory(for: spec)
            guard leases else {
                return "no: its disks are on shared storage, but this agent runs no leases (leases = false); "
                    + "if this host dies the VM stays down until it returns"
            }
            guard spec.restart == .onFailure || (spec.restart == nil && restartDefault == .onFailure) else {
                return "no: its restart policy is not on-failure (`--restart on-failure` when defining it, or the mesh default `restart`)"
            }
            return "yes: this host holds its lease in \(directory) while it runs and kills it if the lease cannot be renewed; "
                + "if this host dies or loses the storage, another host restarts it once the lease expired (Protocol.md §9.2)"
        } catch {
            return "no: \(error)"
        }
    }
}
