import Foundation
import GRDB
import Hypervisor
import Migration

/// Durable records of migrations and ownership (Protocol.md §6.4). Every write is one SQLite
/// transaction with synchronous=FULL: when a function returns, the change survives a crash or
/// a power loss. The migration state machines' `.journal` directives land here.
struct MigrationJournal: Sendable {
    let store: AgentStore

    func beginSource(id: String, vm: StoredVM, peerAddress: String) async throws {
        try await store.database.write { db in
            try StoredMigration(id: id, vmId: vm.id, vmName: vm.name, role: "source", peer: peerAddress,
                                phase: SourceMigration.Phase.requested.rawValue, startedAt: Date().timeIntervalSince1970,
                                peerAddress: peerAddress, epoch: vm.epoch).insert(db)
        }
    }

    func setPhase(_ id: String, _ phase: String, peer: String? = nil, error: String? = nil, result: String? = nil, ended: Bool = false) async throws {
        try await store.database.write { db in
            guard var row = try StoredMigration.fetchOne(db, key: id) else { return }
            row.phase = phase
            if let peer { row.peer = peer }
            if let error { row.error = error }
            if let result { row.result = result }
            if ended { row.endedAt = Date().timeIntervalSince1970 }
            try row.update(db)
        }
    }

    /// The source holds the guest paused until the handover is resolved.
    func hold(vm: String, reason: String?) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET hold = ?, updatedAt = ? WHERE id = ?", arguments: [reason, Date().timeIntervalSince1970, vm])
        }
    }

    /// The source released the VM: it now belongs to `owner` at `epoch`.
    func release(migration id: String, vm: String, to owner: String, epoch: Int64) async throws {
        try await store.database.write { db in
            _ = try StoredVM.deleteOne(db, key: vm)
            try StoredOwnership(vmId: vm, owner: owner, epoch: epoch, updatedAt: Date().timeIntervalSince1970).save(db)
            try db.execute(sql: "UPDATE migration SET phase = ?, endedAt = ? WHERE id = ?",
                           arguments: [SourceMigration.Phase.done.rawValue, Date().timeIntervalSince1970, id])
        }
    }

    /// After an in-doubt handover fell back to the source: the source owns it again, at an epoch
    /// above the one the destination would have taken.
    func reclaim(vm: String, epoch: Int64) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET epoch = ?, hold = NULL, updatedAt = ? WHERE id = ?",
                           arguments: [epoch, Date().timeIntervalSince1970, vm])
        }
    }

    func beginDestination(id: String, spec: VMSpec, source: String, epoch: Int64) async throws {
        try await store.database.write { db in
            try StoredMigration(id: id, vmId: spec.id, vmName: spec.name, role: "destination", peer: source,
                                phase: DestinationMigration.Phase.admitted.rawValue, startedAt: Date().timeIntervalSince1970,
                                epoch: epoch).insert(db)
        }
    }

    /// The commit: the VM is this host's at `epoch`, in one transaction with the phase.
    func commitDestination(id: String, spec: VMSpec, epoch: Int64) async throws {
        try await store.database.write { db in
            var vm = try StoredVM(spec: spec, desiredState: "running", epoch: epoch)
            vm.hold = nil
            try vm.insert(db)
            _ = try StoredOwnership.deleteOne(db, key: spec.id)
            try db.execute(sql: "UPDATE migration SET phase = ? WHERE id = ?", arguments: [DestinationMigration.Phase.committed.rawValue, id])
        }
    }

    /// The destination discards an incoming migration: the phase, and the VM row its commit wrote
    /// if it got that far (same VM, the migration's epoch), in one transaction, so that no restart
    /// can find a VM row this host will not run.
    func discardDestination(id: String, vm: String, epoch: Int64, reason: String) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE migration SET phase = ?, error = ?, endedAt = ? WHERE id = ?",
                           arguments: [DestinationMigration.Phase.discarded.rawValue, reason, Date().timeIntervalSince1970, id])
            try db.execute(sql: "DELETE FROM vm WHERE id = ? AND epoch = ?", arguments: [vm, epoch])
        }
    }

    /// Migrations that had not ended when the agent stopped.
    func unfinished() async throws -> [StoredMigration] {
        try await store.database.read { db in
            try StoredMigration.filter(Column("endedAt") == nil).order(Column("startedAt")).fetchAll(db)
        }
    }

    func migration(_ id: String) async throws -> StoredMigration? {
        try await store.database.read { db in try StoredMigration.fetchOne(db, key: id) }
    }
}
