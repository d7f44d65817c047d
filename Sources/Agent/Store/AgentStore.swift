public import Foundation
public import GRDB
public import Hypervisor

/// The agent's durable state: an SQLite database (WAL, synchronous=FULL) in the state directory.
/// Every change that must survive a crash is written here before it takes effect.
public final class AgentStore: Sendable {
    /// The database queue (serialises writers; readers see committed state).
    public let database: DatabaseQueue

    /// Opens (creating and migrating as needed) `<stateDirectory>/agent.sqlite`.
    public init(stateDirectory: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL") // a committed transaction survives power loss
        }
        database = try DatabaseQueue(path: stateDirectory + "/agent.sqlite", configuration: configuration)
        try Self.migrator.migrate(database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "vm") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("spec", .text).notNull()            // VMSpec as JSON
                t.column("desiredState", .text).notNull()    // running | stopped
                t.column("createdAt", .double).notNull()
                t.column("updatedAt", .double).notNull()
            }
            try db.create(table: "migration") { t in
                t.primaryKey("id", .text)
                t.column("vmId", .text).notNull()
                t.column("vmName", .text).notNull()
                t.column("role", .text).notNull()            // source | destination
                t.column("peer", .text).notNull()
                t.column("phase", .text).notNull()
                t.column("startedAt", .double).notNull()
                t.column("endedAt", .double)
                t.column("result", .text)                    // MigrationReport as JSON
                t.column("error", .text)
            }
        }
        migrator.registerMigration("v2-ownership") { db in
            // Ownership epochs (Protocol.md §6.4): a VM's epoch advances only at a completed
            // handover; `hold` is set while a handover is in doubt (the guest stays paused).
            try db.alter(table: "vm") { t in
                t.add(column: "epoch", .integer).notNull().defaults(to: 1)
                t.add(column: "hold", .text)
            }
            try db.alter(table: "migration") { t in
                t.add(column: "peerAddress", .text)
                t.add(column: "epoch", .integer)
            }
            // What this host knows about VMs it does not run: who owns them, at which epoch.
            try db.create(table: "ownership") { t in
                t.primaryKey("vmId", .text)
                t.column("owner", .text).notNull()
                t.column("epoch", .integer).notNull()
                t.column("updatedAt", .double).notNull()
            }
        }
        migrator.registerMigration("v3-restart") { db in
            // Restart in place (Protocol.md §9.1): how often the owner restarted the VM, the last
            // reason, and why it gave up (the VM then stays down until an operator starts it).
            try db.alter(table: "vm") { t in
                t.add(column: "restarts", .integer).notNull().defaults(to: 0)
                t.add(column: "lastRestartReason", .text)
                t.add(column: "lastRestartAt", .double)
                t.add(column: "restartFailure", .text)
            }
        }
        // DRS: replicated rules, settings and maintenance requests (Agent/DRS, Protocol.md §10.3).
        migrator.registerMigration("drs-v1") { db in try DRSRecordStore.createTables(db) }
        // Storage moves on one host (Agent/Storage, Protocol.md §6.8).
        migrator.registerMigration("storage-move-v1") { db in try StoredStorageMove.createTable(db) }
        // Federation grants of this host's domain (Agent/Federation, Protocol.md §2.9).
        migrator.registerMigration("federation-v1") { db in try FederationStore.createTables(db) }
        // Operations: the occurrence journal of schedules (Agent/Schedules, Protocol.md §12.3) and
        // the row the health monitor times its journal writes on (Agent/Health, §11.1).
        migrator.registerMigration("operations-v1") { db in
            try OccurrenceJournal.createTables(db)
            try HealthProbes.createTables(db)
        }
        // Domain key rotations learned from the operator and from peers (Agent/Trust, Protocol.md §2.10).
        migrator.registerMigration("trustchan-v1") { db in try DomainKeyStore.createTables(db) }
        // Migrations across domains (Agent/Federation, Protocol.md §6.10): the tombstones of VMs that left.
        migrator.registerMigration("xdomain-v1") { db in try TombstoneStore.createTables(db) }
        // High availability (Agent/HA, Protocol.md §9.2): where the lease and spec files of a VM
        // another host owns are, as its owner's ownership records say (nil: not under a lease).
        migrator.registerMigration("ha-v1") { db in
            try db.alter(table: "ownership") { t in t.add(column: "leaseDirectory", .text) }
        }
        // The signed gossip keyring records this host adopted (Agent/Trust, Protocol.md §4.17).
        migrator.registerMigration("trust-v2") { db in try GossipKeyringStore.createTables(db) }
        // The evidence for each ownership epoch (Agent/Ownership, Protocol.md §6.12): an encoded
        // OwnershipEvidenceChain with the VMs this host owns and with the records it heard.
        migrator.registerMigration("trust-v3") { db in
            try db.alter(table: "vm") { t in t.add(column: "evidence", .blob) }
            try db.alter(table: "ownership") { t in t.add(column: "evidence", .blob) }
        }
        // The stretched links this host holds with hosts of federated domains (Agent/Federation,
        // Protocol.md §8.9): dialled again after a restart.
        migrator.registerMigration("xdomain-links-v1") { db in try StretchedLinkStore.createTables(db) }
        // An operator's removal of a tombstone, kept as a marker that is relayed like one
        // (Agent/Federation, Protocol.md §6.10).
        migrator.registerMigration("tomb-v1") { db in try TombstoneStore.addRemovedColumn(db) }
        return migrator
    }
}

/// Who owns a VM this host does not (or no longer) runs, and at which epoch.
public struct StoredOwnership: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "ownership"
    /// VM id.
    public var vmId: String
    /// Owning host.
    public var owner: String
    /// Ownership epoch.
    public var epoch: Int64
    /// Unix seconds.
    public var updatedAt: Double
    /// The directory of the VM's lease and spec files on shared storage (Protocol.md §9.2), when
    /// its owner runs it under a lease.
    public var leaseDirectory: String? = nil
    /// The evidence for this epoch as the record carried it (an encoded `OwnershipEvidenceChain`,
    /// Protocol.md §6.12), passed on with the record.
    public var evidence: Data? = nil
}

/// A VM this agent owns, as stored.
public struct StoredVM: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "vm"
    /// VM id.
    public var id: String
    /// Unique name.
    public var name: String
    /// The spec, JSON-encoded.
    public var spec: String
    /// What the operator asked for: "running" or "stopped".
    public var desiredState: String
    /// Unix seconds.
    public var createdAt: Double
    /// Unix seconds.
    public var updatedAt: Double
    /// Ownership epoch: advances by one at every completed handover.
    public var epoch: Int64 = 1
    /// Why the guest is held paused (a handover in doubt), if it is.
    public var hold: String?
    /// Restarts in place by this host (Protocol.md §9.1), in total.
    public var restarts: Int = 0
    /// Why the last restart in place happened (the QEMU exit), if one did.
    public var lastRestartReason: String?
    /// When it happened, Unix seconds.
    public var lastRestartAt: Double?
    /// Why this host stopped restarting the VM (limit reached, journal failed); nil otherwise.
    /// Cleared when an operator starts or stops the VM.
    public var restartFailure: String?
    /// The evidence for this host's epoch (an encoded `OwnershipEvidenceChain`, Protocol.md
    /// §6.12): what led to it, sent with this host's ownership record of the VM. Nil for a VM
    /// created here (epoch 1 needs none) or received without evidence.
    public var evidence: Data? = nil

    /// A record for `spec`.
    public init(spec: VMSpec, desiredState: String, epoch: Int64 = 1, now: Date = Date()) throws {
        id = spec.id
        name = spec.name
        self.spec = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        self.desiredState = desiredState
        createdAt = now.timeIntervalSince1970
        updatedAt = createdAt
        self.epoch = epoch
    }

    /// The decoded spec.
    public func decodedSpec() throws -> VMSpec {
        try JSONDecoder().decode(VMSpec.self, from: Data(spec.utf8))
    }
}

/// One migration this agent took part in, as stored (the VM's history).
public struct StoredMigration: Codable, Sendable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "migration"
    /// Migration id.
    public var id: String
    /// VM id.
    public var vmId: String
    /// VM name.
    public var vmName: String
    /// "source" or "destination".
    public var role: String
    /// The other host.
    public var peer: String
    /// Last phase reached.
    public var phase: String
    /// Unix seconds.
    public var startedAt: Double
    /// Unix seconds.
    public var endedAt: Double?
    /// `MigrationReport` JSON when it completed.
    public var result: String?
    /// Why it failed.
    public var error: String?
    /// How to reach the peer's agent (host:port), for recovery.
    public var peerAddress: String?
    /// The VM's epoch when the migration started.
    public var epoch: Int64?
}
