import Foundation
import GRDB
import MeshTime
import NIOCore
import NIOPosix

/// The measurements of host health that read the system (Protocol.md §11.1): journal write
/// latency, pressure stall information, event-loop lag. Each returns nil when the kernel or the
/// platform has nothing to measure; a journal that cannot be written is measured as failed.
enum HealthProbes {
    /// The one-row table the journal probe writes (store migration `operations-v1`).
    static func createTables(_ db: Database) throws {
        try db.create(table: "health_probe") { t in
            t.primaryKey("id", .integer)
            t.column("at", .double).notNull()
        }
    }

    /// Milliseconds one durable write to the agent's store takes (`.infinity` when it fails):
    /// the same path every journaled handover takes (SQLite, WAL, synchronous = FULL).
    static func journalWriteMs(_ store: AgentStore) async -> Double {
        let start = ContinuousClock.now
        do {
            try await store.database.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)", arguments: [Date().timeIntervalSince1970])
            }
        } catch {
            return .infinity
        }
        return (ContinuousClock.now - start).inMilliseconds
    }

    /// `/proc/pressure/{cpu,memory,io}`: avg10 of `some` and `full`, keyed "memory full".
    /// Empty where the kernel has no PSI.
    static func pressure(root: String = "/proc/pressure") -> [String: Double] {
        var out: [String: Double] = [:]
        for resource in ["cpu", "memory", "io"] {
            // No PSI for this resource (an older kernel, or PSI disabled): nothing to report.
            guard let text = try? String(contentsOfFile: "\(root)/\(resource)", encoding: .utf8) else { continue }
            for (kind, value) in parsePressure(text) { out["\(resource) \(kind)"] = value }
        }
        return out
    }

    /// Lines `some avg10=1.23 avg60=... total=...` and `full avg10=...` → ["some": 1.23, "full": ...].
    static func parsePressure(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first, kind == "some" || kind == "full",
                  let avg10 = fields.first(where: { $0.hasPrefix("avg10=") }), let value = Double(avg10.dropFirst("avg10=".count)) else { continue }
            out[String(kind)] = value
        }
        return out
    }

    /// How late a 50 ms timer fires on each of the agent's event loops, the worst, in ms.
    static func eventLoopLagMs(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async -> Double? {
        var worst: Double?
        for loop in group.makeIterator() {
            let start = ContinuousClock.now
            let fired = loop.scheduleTask(in: .milliseconds(50)) { ContinuousClock.now }
            // A loop shutting down (the agent stopping) has nothing to measure.
            guard let at = try? await fired.futureResult.get() else { continue }
            let late = max(0, (at - start).inMilliseconds - 50)
            worst = max(worst ?? 0, late)
        }
        return worst
    }
}
