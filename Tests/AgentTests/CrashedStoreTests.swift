@testable import Agent
import Foundation
import GRDB
import MeshIdentity
import Testing

/// An agent killed in the middle of a write transaction leaves its store with a hot rollback
/// journal. Its next start must recover it, not refuse to start.
@Suite(.timeLimit(.minutes(1)))
struct CrashedStoreTests {
    /// A copy of a state directory as a SIGKILL inside a write transaction leaves it: the
    /// database, with pages of the unfinished transaction spilled into it, and its journal.
    func crashedStateDirectory() throws -> String {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("hm-crashed-\(UUID().uuidString.prefix(8))").path
        let live = base + "/live", crashed = base + "/crashed"
        for dir in [live, crashed] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        _ = try AgentStore(stateDirectory: live) // the agent's own schema, domain key table included
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = 1") } // spill to the file
        let writer = try DatabaseQueue(path: live + "/agent.sqlite", configuration: configuration)
        try writer.inDatabase { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS filler(x BLOB)")
            try db.execute(sql: "BEGIN IMMEDIATE")
            for _ in 0..<2_000 { try db.execute(sql: "INSERT INTO filler VALUES (randomblob(1000))") }
            // The transaction is open: copy what a crash now would leave behind.
            for name in ["agent.sqlite", "agent.sqlite-journal"] {
                try FileManager.default.copyItem(atPath: live + "/" + name, toPath: crashed + "/" + name)
            }
            try db.execute(sql: "ROLLBACK")
        }
        return crashed
    }

    @Test func storedDomainKeysAreReadAfterACrashInsideATransaction() throws {
        let crashed = try crashedStateDirectory()
        #expect(FileManager.default.fileExists(atPath: crashed + "/agent.sqlite-journal"), "no hot journal: this test shows nothing")
        // A read-only connection cannot roll the journal back: this is what the agent's start met.
        var readOnly = Configuration()
        readOnly.readonly = true
        #expect(throws: DatabaseError.self) { try DatabaseQueue(path: crashed + "/agent.sqlite", configuration: readOnly).read { db in try db.tableExists("filler") } }
        try DomainKeyStore.installStored(into: TrustStore(anchors: []), stateDirectory: crashed)
        // And the store opens whole, the unfinished transaction gone.
        let store = try DatabaseQueue(path: crashed + "/agent.sqlite")
        #expect(try store.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM filler") } == 0)
    }
}
