import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MeshWire

extension VMManager {
    /// Why `spec` cannot arrive here from a host of `peerDomain` (Protocol.md §6.10): a VM of this
    /// host has its id or one of its MACs, a tombstone here keeps one of its MACs for a VM that
    /// left, or the VM itself left for another domain than `peerDomain`, or for `peerDomain` at an
    /// epoch above `epoch` (the source's epoch; nil when the message carries none, as a pre-flight
    /// check: then only the domain is checked). The message names that VM. nil: neither is in use here.
    func identityConflict(_ spec: VMSpec, from peerDomain: String, epoch: Int64?) async throws -> String? {
        try await store.database.read { db in
            for row in try StoredVM.fetchAll(db) {
                if row.id == spec.id {
                    return "VM id \(spec.id) is in use on this host by VM \(row.name): a VM keeps its id across domains, so this one cannot come in"
                }
                // A row whose spec does not decode cannot be checked: fail closed.
                guard let other = try? JSONDecoder().decode(VMSpec.self, from: Data(row.spec.utf8)) else {
                    return "VM \(row.name) on this host has a spec that cannot be read, so a MAC conflict cannot be ruled out"
                }
                let macs = Set(other.nics.map { $0.mac.lowercased() })
                if let nic = spec.nics.first(where: { macs.contains($0.mac.lowercased()) }) {
                    return "MAC \(nic.mac) of \(spec.name) is in use on this host by VM \(row.name): a VM keeps its MAC across domains; give one of them another MAC"
                }
            }
            for tombstone in try TombstoneStore.all(db) {
                if tombstone.vm == spec.id {
                    // Only the domain the VM went to can bring it back, and not an older copy.
                    if tombstone.domain != peerDomain {
                        return "VM \(tombstone.name) (id \(spec.id)) left for \(tombstone.owner) (domain \(tombstone.domain)) at epoch \(tombstone.epoch): only domain \(tombstone.domain) can bring it back, not domain \(peerDomain)"
                    }
                    if let epoch, epoch < tombstone.epoch {
                        return "VM \(tombstone.name) (id \(spec.id)) left for \(tombstone.owner) at epoch \(tombstone.epoch): this copy at epoch \(epoch) is older and must never start; migrate the current one"
                    }
                    continue
                }
                if let nic = spec.nics.first(where: { tombstone.macs.contains($0.mac.lowercased()) }) {
                    return "MAC \(nic.mac) of \(spec.name) belongs to VM \(tombstone.name), which moved to \(tombstone.owner) and keeps it there"
                }
            }
            return nil
        }
    }

    /// The tombstones that stand in this domain (of VMs that left this host, or another host of
    /// the domain, for another domain), newest first.
    func tombstones() async throws -> [ControlTypes.Tombstone] {
        try await store.database.read { db in try TombstoneStore.all(db) }
    }

    /// Removes the standing tombstone of `vm` (id or name) by an operator's word (§6.10): it
    /// becomes a removal marker, which the caller relays to the other hosts of this domain.
    func removeTombstone(_ vm: String) async throws -> ControlTypes.Tombstone {
        try await store.database.write { db in try TombstoneStore.remove(db, vm: vm) }
    }

    /// Keeps tombstones another host of this domain sent (§6.10); returns how many were new.
    @discardableResult
    func learn(tombstones: [ControlTypes.Tombstone]) async throws -> Int {
        try await store.database.write { db in try TombstoneStore.learn(db, tombstones) }
    }

    /// The standing tombstones as an envelope for the other hosts of this domain (nil: none).
    func tombstoneEnvelope() async throws -> Hostmesh_V1_AgentEnvelope? {
        let envelope = try await store.database.read { db in try TombstoneStore.envelope(db) }
        return envelope.xdomainTombstones.tombstones.isEmpty ? nil : envelope
    }
}
