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
/// refused by the ownership record written beside it (§6.6).
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

    /// Writes the tombstone of the VM whose row `vm` is being released to `owner` (`host@domain`)
    /// at `epoch`; inside the release's transaction, before the row is deleted.
    static func bury(_ db: Database, vm: StoredVM, owner: String, epoch: Int64) throws {
        let spec = try JSONDecoder().decode(VMSpec.self, from: Data(vm.spec.utf8))
        let domain = PeerName.split(owner).domain ?? ""
        try db.execute(sql: """
            INSERT INTO xdomain_tombstone (vmId, name, macs, domain, owner, epoch, at) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(vmId) DO UPDATE SET name = excluded.name, macs = excluded.macs, domain = excluded.domain,
                owner = excluded.owner, epoch = excluded.epoch, at = excluded.at
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
    static func all(_ db: Database) throws -> [ControlTypes.Tombstone] {
        try Row.fetchAll(db, sql: """
            SELECT t.* FROM xdomain_tombstone t LEFT JOIN ownership o ON o.vmId = t.vmId
            WHERE o.vmId IS NULL OR o.epoch <= t.epoch OR instr(o.owner, '@') > 0
            ORDER BY t.at DESC
            """).map { row in
            ControlTypes.Tombstone(vm: row["vmId"], name: row["name"], macs: (row["macs"] as String).split(separator: ",").map(String.init),
                                   domain: row["domain"], owner: row["owner"], epoch: row["epoch"], at: row["at"])
        }
    }

    /// Keeps the tombstones another host of this domain sent (§6.10), each unless one of the same
    /// VM with the same or a higher epoch is held. Returns how many were new or newer.
    @discardableResult
    static func learn(_ db: Database, _ tombstones: [ControlTypes.Tombstone]) throws -> Int {
        var kept = 0
        for t in tombstones where !t.vm.isEmpty && PeerName.isCrossDomain(t.owner) {
            try db.execute(sql: """
                INSERT INTO xdomain_tombstone (vmId, name, macs, domain, owner, epoch, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(vmId) DO UPDATE SET name = excluded.name, macs = excluded.macs, domain = excluded.domain,
                    owner = excluded.owner, epoch = excluded.epoch, at = excluded.at
                WHERE excluded.epoch > xdomain_tombstone.epoch
                """, arguments: [t.vm, t.name, t.macs.map { $0.lowercased() }.joined(separator: ","), t.domain, t.owner, t.epoch, t.at])
            kept += db.changesCount
        }
        return kept
    }

    /// The tombstones that stand, for other hosts of this domain.
    static func envelope(_ db: Database) throws -> Hostmesh_V1_AgentEnvelope {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.xdomainTombstones.tombstones = try all(db).map { t in
            var wire = Hostmesh_V1_XdomainTombstone()
            wire.vmID = t.vm
            wire.name = t.name
            wire.macs = t.macs
            wire.domain = t.domain
            wire.owner = t.owner
            wire.epoch = UInt64(max(0, t.epoch))
            wire.at = Int64(t.at)
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
                                                             owner: t.owner, epoch: epoch, at: Double(t.at)))
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
