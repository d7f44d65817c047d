import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MeshWire
import MigrationService

/// The tombstones of VMs that left this host for another domain (Protocol.md §6.10), in the
/// agent's SQLite store (table `xdomain_tombstone`): the VM's id, its MACs, the domain and host
/// it went to, and its epoch there. Written in the same transaction as the release, so a VM that
/// left is never without one; removed when the VM comes back (its commit here). While it stands,
/// no VM is defined here with that id or one of those MACs, and a copy older than its epoch is
/// refused by the ownership record written beside it (§6.6). An operator may remove one
/// (`tombstones.remove`): the row then becomes a removal marker at the same epoch (`removed`,
/// migration "tomb-v1"), relayed like a tombstone so a relay cannot bring it back (§6.10).
enum TombstoneStore {
    /// The table (the store's migration "xdomain-v1").
    static func createTables(_ db: Database) throws {
        try db.create(table: "xdomain_tombstone") { t in
            t.primaryKey("vmId", .text)
            t.column("name", .text).notNull()
            t.column("macs", .text).notNull()           // comma-separated, lower case
            t.column("domain", .text).notNull()
            t.column("owner", .text).notNull()          // host@domain
            t.column("epoch", .integer).notNull()
            t.column("at", .double).notNull()
        }
    }

    /// The removal marker (the store's migration "tomb-v1"): 1 once an operator removed the
    /// tombstone; relayed like one, it beats a tombstone of the same VM at the same or a lower
    /// epoch and is beaten by one at a higher epoch (`supersedes`).
    static func addRemovedColumn(_ db: Database) throws {
        try db.alter(table: "xdomain_tombstone") { t in t.add(column: "removed", .integer).notNull().defaults(to: 0) }
    }

    /// Whether a tombstone or removal marker (`epoch`, `removed`) heard from a peer replaces the
    /// one held (`heldEpoch`, `heldRemoved`) for the same VM (§6.10): a higher epoch always does
    /// (a later departure, or its removal); at the same epoch only a removal replaces a tombstone.
    static func supersedes(epoch: Int64, removed: Bool, heldEpoch: Int64, heldRemoved: Bool) -> Bool {
        epoch > heldEpoch || (epoch == heldEpoch && removed && !heldRemoved)
    }

    /// Writes the tombstone of the VM whose row `vm` is being released to `owner` (`host@domain`)
    /// at `epoch`; inside the release's transaction, before the row is deleted.
    static func bury(_ db: Database, vm: StoredVM, owner: String, epoch: Int64) throws {
        let spec = try JSONDecoder().decode(VMSpec.self, from: Data(vm.spec.utf8))
        let domain = PeerName.split(owner).domain ?? ""
        try db.execute(sql: """
            INSERT INTO xdomain_tombstone (vmId, name, macs, domain, owner, epoch, at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(vmId) DO UPDATE SET name = excluded.name, macs = excluded.macs, domain = excluded.domain,
                owner = excluded.owner, epoch = excluded.epoch, at = excluded.at, removed = 0
            """, arguments: [spec.id, spec.name, spec.nics.map { $0.mac.lowercased() }.joined(separator: ","), domain, owner, epoch,
                             Date().timeIntervalSince1970])
    }

    /// The VM came back: its tombstone goes (inside the commit's transaction).
    static func lift(_ db: Database, vm: String) throws {
        try db.execute(sql: "DELETE FROM xdomain_tombstone WHERE vmId = ?", arguments: [vm])
    }

    /// Every tombstone that stands, newest first: written here or heard from another host of
    /// this domain, unless the VM came back (an ownership record naming a host of this domain at a
    /// higher epoch: its return, wherever in the domain it landed, lifts it everywhere).
    /// A removed one (a removal marker) does not stand: it is neither listed nor checked.
    static func all(_ db: Database) throws -> [ControlTypes.Tombstone] {
        try relayed(db).filter { !$0.removed }
    }

    /// The tombstones that stand and the removal markers of those an operator removed (unless the
    /// VM came back since), newest first: what is relayed to the other hosts of this domain.
    static func relayed(_ db: Database) throws -> [ControlTypes.Tombstone] {
        try Row.fetchAll(db, sql: """
            SELECT t.* FROM xdomain_tombstone t LEFT JOIN ownership o ON o.vmId = t.vmId
            WHERE o.vmId IS NULL OR o.epoch <= t.epoch OR instr(o.owner, '@') > 0
            ORDER BY t.at DESC
            """).map { row in
            ControlTypes.Tombstone(vm: row["vmId"], name: row["name"], macs: (row["macs"] as String).split(separator: ",").map(String.init),
                                   domain: row["domain"], owner: row["owner"], epoch: row["epoch"], at: row["at"],
                                   removed: (row["removed"] as Int64) != 0)
        }
    }

    /// An operator removes the standing tombstone of `vm` (its id, or its name if no id matches):
    /// the row becomes a removal marker at the tombstone's epoch (§6.10), which the caller relays.
    /// The ownership record beside it stays (it still fences a stale copy). Returns the tombstone
    /// removed; refuses one that does not stand here, or a name that several tombstones carry.
    static func remove(_ db: Database, vm: String) throws -> ControlTypes.Tombstone {
        let standing = try all(db)
        var matches = standing.filter { $0.vm == vm }
        if matches.isEmpty { matches = standing.filter { $0.name == vm } }
        guard let tombstone = matches.first else {
            throw ControlError.notFound("no tombstone of VM \(vm) stands on this host: `hostmesh domain federation tombstones` lists them by name and id")
        }
        guard matches.count == 1 else {
            throw ControlError.badRequest("\(matches.count) tombstones carry the name \(vm) (ids \(matches.map(\.vm).joined(separator: ", "))): remove one by its id")
        }
        try db.execute(sql: "UPDATE xdomain_tombstone SET removed = 1 WHERE vmId = ? AND epoch = ?", arguments: [tombstone.vm, tombstone.epoch])
        var removed = tombstone
        removed.removed = true
        return removed
    }

    /// Keeps the tombstones and removal markers another host of this domain sent (§6.10), each
    /// unless what is held for the same VM is not `supersedes`-beaten by it: a tombstone is kept
    /// over one of a lower epoch, a removal marker over a tombstone of the same or a lower epoch.
    /// Returns how many were new or newer.
    @discardableResult
    static func learn(_ db: Database, _ tombstones: [ControlTypes.Tombstone]) throws -> Int {
        var kept = 0
        for t in tombstones where !t.vm.isEmpty && PeerName.isCrossDomain(t.owner) {
            if let held = try Row.fetchOne(db, sql: "SELECT epoch, removed FROM xdomain_tombstone WHERE vmId = ?", arguments: [t.vm]),
               !supersedes(epoch: t.epoch, removed: t.removed, heldEpoch: held["epoch"], heldRemoved: (held["removed"] as Int64) != 0) {
                continue
            }
            try db.execute(sql: """
                INSERT INTO xdomain_tombstone (vmId, name, macs, domain, owner, epoch, at, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(vmId) DO UPDATE SET name = excluded.name, macs = excluded.macs, domain = excluded.domain,
                    owner = excluded.owner, epoch = excluded.epoch, at = excluded.at, removed = excluded.removed
                """, arguments: [t.vm, t.name, t.macs.map { $0.lowercased() }.joined(separator: ","), t.domain, t.owner, t.epoch, t.at,
                                 t.removed ? 1 : 0])
            kept += 1
        }
        return kept
    }

    /// The tombstones that stand and the removal markers, for other hosts of this domain.
    static func envelope(_ db: Database) throws -> Hostmesh_V1_AgentEnvelope {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.xdomainTombstones.tombstones = try relayed(db).map { t in
            var wire = Hostmesh_V1_XdomainTombstone()
            wire.vmID = t.vm
            wire.name = t.name
            wire.macs = t.macs
            wire.domain = t.domain
            wire.owner = t.owner
            wire.epoch = UInt64(max(0, t.epoch))
            wire.at = Int64(t.at)
            wire.removed = t.removed
            return wire
        }
        return envelope
    }

    /// At most this many tombstones are taken from one message (the excess is dropped, logged).
    static let maxPerMessage = 1024
    /// At most this many MACs are taken from one tombstone (a VM has few NICs; the excess is dropped).
    static let maxMACs = 16

    /// What a peer's `xdomain_tombstones` yields: the tombstones kept, and why others were not.
    struct Admitted: Sendable {
        var tombstones: [ControlTypes.Tombstone] = []
        var dropped: [String] = []
    }

    /// Tombstones as they came on the wire from a peer of domain `peerDomain` (§6.10): taken only
    /// from a host of this host's own domain (`localDomain`); a tombstone whose epoch is not a
    /// sane value (above `Int64.max - 1`) is dropped; at most `maxPerMessage` tombstones and
    /// `maxMACs` MACs each are taken, the excess dropped. Each drop is named in `dropped`.
    /// (Tombstones carry no signature of the host that released the VM: a host of this domain is
    /// trusted to relay them as it is trusted with the gossip keyring.)
    static func admit(_ update: Hostmesh_V1_XdomainTombstones, fromDomain peerDomain: String, localDomain: String) -> Admitted {
        var admitted = Admitted()
        guard peerDomain == localDomain else {
            admitted.dropped.append("\(update.tombstones.count) tombstone(s) from domain \(peerDomain): tombstones are taken from hosts of domain \(localDomain) only")
            return admitted
        }
        if update.tombstones.count > maxPerMessage {
            admitted.dropped.append("\(update.tombstones.count - maxPerMessage) tombstone(s) above the \(maxPerMessage) one message may carry")
        }
        for t in update.tombstones.prefix(maxPerMessage) {
            guard let epoch = Int64(exactly: t.epoch), epoch != Int64.max else {
                admitted.dropped.append("tombstone of VM \(t.vmID): epoch \(t.epoch) is not a sane value")
                continue
            }
            if t.macs.count > maxMACs {
                admitted.dropped.append("tombstone of VM \(t.vmID): \(t.macs.count - maxMACs) MAC(s) above \(maxMACs)")
            }
            admitted.tombstones.append(ControlTypes.Tombstone(vm: t.vmID, name: t.name, macs: Array(t.macs.prefix(maxMACs)), domain: t.domain,
                                                             owner: t.owner, epoch: epoch, at: Double(t.at), removed: t.removed))
        }
        return admitted
    }

    /// Why `spec` may not be defined here: its id or a MAC belongs to a VM that left for another
    /// domain (nil: none does).
    static func conflict(_ db: Database, with spec: VMSpec) throws -> String? {
        // Domain-wide: the ownership record the releasing host wrote (and its peers heard, §6.6)
        // says the VM lives in another domain now, whichever host of this domain it left.
        if let away = try StoredOwnership.fetchOne(db, key: spec.id), PeerName.isCrossDomain(away.owner) {
            return "VM id \(spec.id) belongs to a VM that moved to \(away.owner) at epoch \(away.epoch): a copy of it must never start in this domain; give the new VM another id"
        }
        for tombstone in try all(db) {
            if tombstone.vm == spec.id {
                return "VM id \(spec.id) belongs to VM \(tombstone.name), which moved to \(tombstone.owner) at epoch \(tombstone.epoch): a copy of it must never start here; give the new VM another id"
            }
            if let nic = spec.nics.first(where: { tombstone.macs.contains($0.mac.lowercased()) }) {
                return "MAC \(nic.mac) of NIC \(nic.id) belongs to VM \(tombstone.name), which moved to \(tombstone.owner) (domain \(tombstone.domain)) and keeps it there: use another MAC"
            }
        }
        return nil
    }
}
