import Foundation
import GRDB
import MeshWire

/// The replicated DRS records in the agent's SQLite store (table `drs_record`, Protocol.md §10.3):
/// one row per key, the record's protobuf encoding as its body; tombstones are kept.
struct DRSRecordStore: Sendable {
    let store: AgentStore

    /// The table, created by the store's `drs-v1` migration.
    static func createTables(_ db: Database) throws {
        try db.create(table: "drs_record") { t in
            t.primaryKey("key", .text)
            t.column("version", .integer).notNull()
            t.column("writer", .text).notNull()
            t.column("record", .blob).notNull()
        }
    }

    func load() async throws -> [DRSRecord] {
        let rows = try await store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT record FROM drs_record ORDER BY key").map { row -> Data in row["record"] }
        }
        return try rows.compactMap { DRSRecordCoding.record(try Hostmesh_V1_DrsRecord(serializedBytes: $0)) }
    }

    /// Writes records durably (before they are applied or sent on). A row is replaced only by a
    /// record that supersedes it (version, then writer: `ReplicatedRecords.Record.supersedes`),
    /// so two saves that finish out of order (a local write and a merge of one key) keep the winner.
    func save(_ records: [DRSRecord]) async throws {
        guard !records.isEmpty else { return }
        let rows = try records.map { ($0.key, $0.version, $0.writer, try DRSRecordCoding.wire($0).serializedData()) }
        try await store.database.write { db in
            for (key, version, writer, data) in rows {
                try db.execute(sql: """
                    INSERT INTO drs_record (key, version, writer, record) VALUES (?, ?, ?, ?)
                    ON CONFLICT(key) DO UPDATE SET version = excluded.version, writer = excluded.writer, record = excluded.record
                    WHERE excluded.version > drs_record.version
                       OR (excluded.version = drs_record.version AND excluded.writer > drs_record.writer)
                    """, arguments: [key, Int64(bitPattern: version), writer, data])
            }
        }
    }
}
