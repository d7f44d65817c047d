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

    /// Installs the records stored in `stateDirectory`'s `agent.sqlite` (if it and the table
    /// exist) into `trust`, in order, skipping any that no longer verify: before the agent checks
    /// its own certificate, which may come from a domain key only a rotation made trusted.
    static func installStored(into trust: TrustStore, stateDirectory: String) throws {
        let path = stateDirectory + "/agent.sqlite"
        guard FileManager.default.fileExists(atPath: path) else { return }
        // Read-write, though it only reads: an agent killed inside a transaction leaves a hot
        // rollback journal, which only a writing connection may roll back; read-only, the open
        // failed ("attempt to write a readonly database") at every start, so the agent could not
        // come back after such a crash (seen in FaultInjectionTests).
        let records = try DatabaseQueue(path: path).read { db -> [[UInt8]] in
            guard try db.tableExists("domain_key_rotation") else { return [] }
            return try Data.fetchAll(db, sql: "SELECT record FROM domain_key_rotation ORDER BY domain, version").map { [UInt8]($0) }
        }
        for bytes in records {
            // A record that no longer verifies is skipped here; the agent logs it when it loads the store.
            guard let record = try? DomainKeyRotation(serialized: bytes) else { continue }
            _ = try? trust.domainKeys.install(record, configured: trust.configuredAnchors) // refused or stale: skipped, as above
        }
    }

    /// The stored records, each domain's in version order (each is verified again when loaded).
    func all() throws -> [[UInt8]] {
        try database.read { db in
            try Data.fetchAll(db, sql: "SELECT record FROM domain_key_rotation ORDER BY domain, version").map { [UInt8]($0) }
        }
    }
}
