import ControlAPI
import Foundation
import GRDB
import MigrationService

/// The stretched links this host holds with hosts of federated domains (Protocol.md §8.9, "Links
/// across restarts"), in the agent's SQLite store (table `xdomain_link`): a link's keys live only
/// in memory, so after a restart this host dials each of these peers again and the pair re-keys.
/// A row is written when a link is made (either end; the end that was dialed learns where to dial
/// back from the peer's hello) and deleted when the grant for the peer's domain ends.
struct StretchedLinkStore: Sendable {
    /// One link: the peer's host id in its domain, the domain, and where its agent takes channels.
    struct Link: Hashable, Sendable {
        var host: String
        var domain: String
        var address: HostPort
    }

    let database: DatabaseQueue

    init(store: AgentStore) { database = store.database }

    /// The table (the store's migration "xdomain-links-v1").
    static func createTables(_ db: Database) throws {
        try db.create(table: "xdomain_link") { t in
            t.primaryKey("peer", .text)                 // host@domain
            t.column("host", .text).notNull()
            t.column("domain", .text).notNull()
            t.column("address", .text).notNull()        // host:port of the peer's channel listener
            t.column("linkedAt", .double).notNull()
        }
    }

    /// Keeps `link` (replacing an older row for the same peer).
    func remember(_ link: Link) throws {
        try database.write { db in
            try db.execute(sql: """
                INSERT INTO xdomain_link (peer, host, domain, address, linkedAt) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(peer) DO UPDATE SET address = excluded.address, linkedAt = excluded.linkedAt
                """, arguments: [PeerName.qualified(host: link.host, domain: link.domain), link.host, link.domain, "\(link.address)",
                                 Date().timeIntervalSince1970])
        }
    }

    /// Forgets every link to a host of `domain` (its grant ended). Returns how many.
    @discardableResult
    func forget(domain: String) throws -> Int {
        try database.write { db in
            try db.execute(sql: "DELETE FROM xdomain_link WHERE domain = ?", arguments: [domain])
            return db.changesCount
        }
    }

    /// Every link kept, oldest first. A row whose address does not parse is skipped (it could
    /// only come from an edited database) and named in `unreadable`.
    func all() throws -> (links: [Link], unreadable: [String]) {
        let rows = try database.read { db in try Row.fetchAll(db, sql: "SELECT peer, host, domain, address FROM xdomain_link ORDER BY linkedAt") }
        var links: [Link] = [], unreadable: [String] = []
        for row in rows {
            do { links.append(Link(host: row["host"], domain: row["domain"], address: try HostPort(parsing: row["address"]))) } catch {
                unreadable.append(row["peer"])
            }
        }
        return (links, unreadable)
    }
}
