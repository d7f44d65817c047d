import ControlAPI
import Foundation
import Hypervisor

/// The VM side of a storage move (Agent/Storage): the VM is marked busy for the whole move, so
/// nothing else (a migration, a stop, a restart) touches it meanwhile.
extension VMManager {
    /// Marks a running VM as moving a disk; returns its row, spec and QEMU.
    func beginStorageMove(_ reference: String) async throws -> (vm: StoredVM, spec: VMSpec, process: VMProcess) {
        let vm = try await find(reference)
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        try mark(vm.id, .movingStorage, name: vm.name) // undone below if the move cannot start after all
        do {
            guard let process = processes[vm.id], await process.exitIfEnded() == nil else {
                throw ControlError.conflict("\(vm.name) is not running here: a storage move copies a running VM's disk; for a stopped VM, move the file and edit nothing (or define the VM again with the new path)")
            }
            // The lease directory is beside the first disk (§9.2): a move would leave the keeper's file behind.
            if Self.leaseKeeperPid(vm.id, runtime: directory(for: vm.id).path) != nil {
                throw ControlError.conflict("\(vm.name) runs under a lease on shared storage, and moving a leased VM's disk is not built (Protocol.md §9.2): stop it, move the file, and start it again")
            }
            // The move pauses the guest for its switch and then runs it: an operator's pause would end.
            try await refusePaused(vm, process, "a storage move would run it at its end")
            // Read again under the mark: a hold may have come meanwhile.
            let current = try await find(vm.id)
            if let hold = current.hold { throw ControlError.conflict("\(vm.name) is held: \(hold)") }
            return (current, try current.decodedSpec(), process)
        } catch {
            busy[vm.id] = nil
            throw error
        }
    }

    /// Marks VM `id` busy for a storage move's recovery (before the agent serves anyone).
    func beginStorageRecovery(_ id: String) -> VMProcess? {
        if busy[id] == nil { busy[id] = .movingStorage }
        return processes[id]
    }

    /// The move of VM `id` ended (done, rolled back, or left to the next start with `problem`).
    func endStorageMove(_ id: String, problem: String? = nil) {
        if busy[id] == .movingStorage { busy[id] = nil }
        if let problem { problems[id] = problem }
    }

    /// Shows `problem` on VM `id` (`vm list`, `vm show`) until it is started or stopped again.
    func note(_ id: String, problem: String) { problems[id] = problem }
}
