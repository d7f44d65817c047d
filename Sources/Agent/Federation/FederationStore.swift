import Foundation
import GRDB
import MeshIdentity

/// The federation grants this agent holds, one per (domain, peer domain), in the agent's SQLite
/// store (table `federation_grant`), so a grant, and its revocation, survive restarts
/// (Protocol.md §2.9). Only ever replaced by a higher version.
struct FederationStore: Sendable {
    let database: DatabaseQueue

    init(store: AgentStore) { database = store.database }

    /// The table (the store's migration "federation-v1").
    static func createTables(_ db: Database) throws {
        try db.create(table: "federation_grant") { t in
            t.primaryKey("key", .text)                  // domain/peer_domain
            t.column("domain", .text).notNull()
            t.column("peerDomain", .text).notNull()
            t.column("version", .integer).notNull()
            t.column("grant", .blob).notNull()          // encoded FederationGrant, as signed
            t.column("storedAt", .double).notNull()
        }
    }

    /// Keeps `grant` unless a grant of its key with the same or a higher version is stored.
    func save(_ grant: FederationGrant) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO federation_grant (key, domain, peerDomain, version, "grant", storedAt) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET version = excluded.version, "grant" = excluded."grant", storedAt = excluded.storedAt
                WHERE excluded.version > federation_grant.version
                """, arguments: [grant.key, grant.domain, grant.peerDomain, Int64(clamping: grant.version), Data(grant.serialized),
                                 Date().timeIntervalSince1970])
        }
    }

    /// The stored grants, as encoded (each is verified again before it is used).
    func all() throws -> [[UInt8]] {
        try database.read { db in
            try Data.fetchAll(db, sql: "SELECT \"grant\" FROM federation_grant ORDER BY key").map { [UInt8]($0) }
        }
    }
}
