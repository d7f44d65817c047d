import Foundation
import GRDB

/// The occurrences this host started as an executor (table `schedule_occurrence`, Protocol.md
/// §12.3): an occurrence id is written here before its action starts, so that it is never run
/// twice by this host, even across a restart; its outcome is written when it ends. One found
/// without an outcome at start was interrupted: it is reported so, never run again.
struct OccurrenceJournal: Sendable {
    let store: AgentStore

    static func createTables(_ db: Database) throws {
        try db.create(table: "schedule_occurrence") { t in
            t.primaryKey("id", .text)                     // <schedule id>#<index>
            t.column("schedule", .text).notNull()
            t.column("occurrence", .integer).notNull()    // the index
            t.column("startedAt", .double).notNull()
            t.column("outcome", .text)                    // nil while it runs
            t.column("detail", .text)
        }
    }

    /// Every occurrence id journaled here.
    func journaled() async throws -> Set<String> {
        try await store.database.read { db in Set(try String.fetchAll(db, sql: "SELECT id FROM schedule_occurrence")) }
    }

    /// Journals the start of an occurrence; false when it was already journaled (not to be run).
    func begin(_ id: String, schedule: String, index: Int) async throws -> Bool {
        try await store.database.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO schedule_occurrence (id, schedule, occurrence, startedAt) VALUES (?, ?, ?, ?)",
                           arguments: [id, schedule, index, Date().timeIntervalSince1970])
            return db.changesCount > 0
        }
    }

    func end(_ id: String, outcome: String, detail: String) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE schedule_occurrence SET outcome = ?, detail = ? WHERE id = ?", arguments: [outcome, detail, id])
        }
    }

    /// Occurrences started and never ended (the agent stopped while they ran): (id, schedule, index).
    func unfinished() async throws -> [(id: String, schedule: String, index: Int)] {
        try await store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, schedule, occurrence FROM schedule_occurrence WHERE outcome IS NULL").map {
                (id: $0["id"], schedule: $0["schedule"], index: $0["occurrence"])
            }
        }
    }
}
