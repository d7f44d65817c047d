import Foundation
import GRDB
import MeshIdentity

/// The signed gossip keyring records this agent adopted (Protocol.md §4.17), in its SQLite store
/// (table `gossip_keyring`), so the version it holds survives restarts. The records hold no
/// secret: the keys themselves stay in `gossip.keys` (mode 0600).
struct GossipKeyringStore: Sendable {
    let database: DatabaseQueue

    init(store: AgentStore) { database = store.database }

    /// The table (the store's migration "trust-v2").
    static func createTables(_ db: Database) throws {
        try db.create(table: "gossip_keyring") { t in
            t.primaryKey("version", .integer)
            t.column("record", .blob).notNull()         // encoded TrustGossipKeyring, as signed
            t.column("storedAt", .double).notNull()
        }
    }

    /// Keeps `record` (a version already stored is left as it is).
    func save(_ record: GossipKeyringRecord) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO gossip_keyring (version, record, storedAt) VALUES (?, ?, ?)
                ON CONFLICT(version) DO NOTHING
                """, arguments: [Int64(clamping: record.version), Data(record.serialized), Date().timeIntervalSince1970])
        }
    }

    /// The stored records, newest first (each is verified again when loaded).
    func newestFirst() throws -> [[UInt8]] {
        try database.read { db in
            try Data.fetchAll(db, sql: "SELECT record FROM gossip_keyring ORDER BY version DESC").map { [UInt8]($0) }
        }
    }
}
