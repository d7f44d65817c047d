import Foundation
import GRDB
import Hypervisor

/// One storage move (Protocol.md §6.8), as journaled: a row per move, its phase written before
/// the effect that follows it.
struct StoredStorageMove: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "storage_move"
    /// Move id (a UUID).
    var id: String
    var vmId: String
    var vmName: String
    /// The disk's index in the VM spec.
    var diskIndex: Int
    /// The image the disk was on.
    var fromPath: String
    /// The image it moves to.
    var toPath: String
    /// The target's QEMU node name (its file node: this + `-file`).
    var targetNode: String
    /// The disk's QEMU node before the move (known from `pivoting` on).
    var sourceNode: String?
    /// `StorageMovePhase` raw value.
    var phase: String
    var startedAt: Double
    var endedAt: Double?
    var error: String?

    /// The table (AgentStore migration `storage-move-v1`).
    static func createTable(_ db: Database) throws {
        try db.create(table: databaseTableName) { t in
            t.primaryKey("id", .text)
            t.column("vmId", .text).notNull()
            t.column("vmName", .text).notNull()
            t.column("diskIndex", .integer).notNull()
            t.column("fromPath", .text).notNull()
            t.column("toPath", .text).notNull()
            t.column("targetNode", .text).notNull()
            t.column("sourceNode", .text)
            t.column("phase", .text).notNull()
            t.column("startedAt", .double).notNull()
            t.column("endedAt", .double)
            t.column("error", .text)
        }
    }
}

/// Durable writes of storage moves. Each is one transaction (synchronous=FULL): when it returns
/// the phase survives a crash; when it throws nothing of it was written.
struct StorageMoveJournal: Sendable {
    let store: AgentStore

    func begin(_ move: StoredStorageMove) async throws {
        try await store.database.write { db in try move.insert(db) }
    }

    func set(_ id: String, _ phase: StorageMovePhase, sourceNode: String? = nil, error: String? = nil) async throws {
        try await store.database.write { db in
            guard var row = try StoredStorageMove.fetchOne(db, key: id) else { throw StorageMoveError.journal("storage move \(id) has no journal row") }
            row.phase = phase.rawValue
            if let sourceNode { row.sourceNode = sourceNode }
            if let error { row.error = error }
            if phase == .done || phase == .aborted { row.endedAt = Date().timeIntervalSince1970 }
            try row.update(db)
        }
    }

    /// `switched`, and the VM's spec naming the new image, in one transaction: from here on the
    /// new file is the disk, whatever happens.
    func switched(_ id: String, vm: String, disk: Int, to path: String) async throws {
        try await store.database.write { db in
            guard var row = try StoredStorageMove.fetchOne(db, key: id) else { throw StorageMoveError.journal("storage move \(id) has no journal row") }
            guard var stored = try StoredVM.fetchOne(db, key: vm) else { throw StorageMoveError.journal("VM \(vm) has no row") }
            var spec = try stored.decodedSpec()
            guard spec.disks.indices.contains(disk) else { throw StorageMoveError.journal("VM \(vm) has no disk \(disk)") }
            spec.disks[disk].path = path
            stored.spec = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            stored.updatedAt = Date().timeIntervalSince1970
            try stored.update(db)
            row.phase = StorageMovePhase.switched.rawValue
            try row.update(db)
        }
    }

    /// Moves not yet `done` or `aborted`, oldest first.
    func unfinished() async throws -> [StoredStorageMove] {
        try await store.database.read { db in
            try StoredStorageMove.filter([StorageMovePhase.copying.rawValue, StorageMovePhase.pivoting.rawValue, StorageMovePhase.switched.rawValue]
                .contains(Column("phase"))).order(Column("startedAt")).fetchAll(db)
        }
    }
}
