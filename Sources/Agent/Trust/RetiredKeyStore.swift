import Foundation
import GRDB
import MeshCrypto
import MeshIdentity

/// The host keys this agent saw rotated away (Protocol.md §3.9), in the agent's SQLite store
/// (table `retired_key`), so that the grace period and the refusal after it survive a restart:
/// without it, a restarted agent would accept a retired key again for as long as its old
/// certificate lasts.
struct RetiredKeyStore: Sendable {
    let database: DatabaseQueue

    /// Uses the agent's database, creating the table if this is its first use (its own table,
    /// created idempotently, like `RevocationStore`).
    init(store: AgentStore) throws {
        database = store.database
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS retired_key (
                    hostId TEXT NOT NULL,
                    key BLOB NOT NULL,
                    refusedFrom INTEGER NOT NULL,
                    PRIMARY KEY (hostId, key)
                )
                """)
        }
    }

    /// Keeps `retirement`; a key already kept keeps its earlier deadline.
    func save(_ retirement: RetiredKeyRegistry.Retirement) async throws {
        try await database.write { db in
            try db.execute(sql: """
                INSERT INTO retired_key (hostId, key, refusedFrom) VALUES (?, ?, ?)
                ON CONFLICT(hostId, key) DO UPDATE SET refusedFrom = excluded.refusedFrom WHERE excluded.refusedFrom < retired_key.refusedFrom
                """, arguments: [retirement.hostID, Data(retirement.key.bytes), retirement.refusedFrom])
        }
    }

    /// Every kept retirement. A row whose key does not decode (a damaged file) is skipped and
    /// named in `damaged`: the agent logs it and goes on (a key it cannot read is not one it can
    /// match a certificate to either).
    func all() throws -> (retirements: [RetiredKeyRegistry.Retirement], damaged: [String]) {
        try database.read { db in
            var retirements: [RetiredKeyRegistry.Retirement] = []
            var damaged: [String] = []
            for row in try Row.fetchAll(db, sql: "SELECT hostId, key, refusedFrom FROM retired_key ORDER BY hostId") {
                let hostID: String = row["hostId"]
                let bytes: Data = row["key"]
                do {
                    retirements.append(RetiredKeyRegistry.Retirement(hostID: hostID, key: try SigningPublicKey(bytes: [UInt8](bytes)), refusedFrom: row["refusedFrom"]))
                } catch { damaged.append(hostID) }
            }
            return (retirements, damaged)
        }
    }
}
