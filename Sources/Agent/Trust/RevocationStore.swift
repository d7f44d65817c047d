import Foundation
import GRDB
import MeshIdentity

/// The revocation lists this agent holds, one per domain, in the agent's SQLite store
/// (table `revocation_list`), so a revoked host stays refused across restarts (Protocol.md §2.5).
/// Only ever replaced by a higher version.
struct RevocationStore: Sendable {
    let database: DatabaseQueue

    /// Uses the agent's database, creating the table if this is its first use (its own table,
    /// created idempotently, so it needs no step in the store's shared migrator).
    init(store: AgentStore) throws {
        database = store.database
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS revocation_list (
                    domain TEXT PRIMARY KEY NOT NULL,
                    version INTEGER NOT NULL,
                    list BLOB NOT NULL,
                    storedAt REAL NOT NULL
                )
                """)
        }
    }

    /// Keeps `list` unless a list of its domain with the same or a higher version is stored.
    func save(_ list: RevocationList) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO revocation_list (domain, version, list, storedAt) VALUES (?, ?, ?, ?)
                ON CONFLICT(domain) DO UPDATE SET version = excluded.version, list = excluded.list, storedAt = excluded.storedAt
                WHERE excluded.version > revocation_list.version
                """, arguments: [list.domain, Int64(clamping: list.version), Data(list.serialized), Date().timeIntervalSince1970])
        }
    }

    /// The stored lists, as encoded (each is verified again before it is used: the trust
    /// anchors may have changed since).
    func all() throws -> [[UInt8]] {
        try database.read { db in
            try Data.fetchAll(db, sql: "SELECT list FROM revocation_list ORDER BY domain").map { [UInt8]($0) }
        }
    }
}
