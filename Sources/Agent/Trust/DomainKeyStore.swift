import Foundation
import GRDB
import MeshIdentity

/// The domain key rotations this agent holds (Protocol.md §2.10), every version of every domain,
/// in the agent's SQLite store (table `domain_key_rotation`), so a learned trust anchor and a
/// retirement survive restarts.
struct DomainKeyStore: Sendable {
    let database: DatabaseQueue

    init(store: AgentStore) { database = store.database }

    /// The table (the store's migration "trustchan-v1").
    static func createTables(_ db: Database) throws {
        try db.create(table: "domain_key_rotation") { t in
            t.column("domain", .text).notNull()
            t.column("version", .integer).notNull()
            t.column("record", .blob).notNull()         // encoded DomainKeyRotation, as signed
            t.column("storedAt", .double).notNull()
            t.primaryKey(["domain", "version"])
        }
    }

    /// Keeps `record` (a version already stored for its domain is left as it is).
    func save(_ record: DomainKeyRotation) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO domain_key_rotation (domain, version, record, storedAt) VALUES (?, ?, ?, ?)
                ON CONFLICT(domain, version) DO NOTHING
                """, arguments: [record.domain, Int64(clamping: record.version), Data(record.serialized), Date().timeIntervalSince1970])
        }
    }

    /// The stored records, each domain's in version order (each is verified again when loaded).
    func all() throws -> [[UInt8]] {
        try database.read { db in
            try Data.fetchAll(db, sql: "SELECT record FROM domain_key_rotation ORDER BY domain, version").map { [UInt8]($0) }
        }
    }
}
