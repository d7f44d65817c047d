@testable import Agent
import ControlAPI
import Foundation
import GRDB
import Hypervisor
import Logging
import MeshWire
import Testing

/// What a peer's `xdomain_tombstones` may put into the real SQLite store (Protocol.md §6.10):
/// only tombstones from a host of this domain, with a sane epoch, within the per-message caps.
@Suite struct TombstoneAdmissionTests {
    let state: String
    let store: AgentStore
    let manager: VMManager

    init() throws {
        state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-tombstone-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        store = try AgentStore(stateDirectory: state)
        manager = VMManager(store: store, stateDirectory: state, logger: Logger(label: "test"))
    }

    func wire(_ vm: String, epoch: UInt64 = 3, macs: [String] = ["52:54:00:00:00:01"]) -> Hostmesh_V1_XdomainTombstone {
        var t = Hostmesh_V1_XdomainTombstone()
        t.vmID = vm
        t.name = "vm-\(vm)"
        t.macs = macs
        t.domain = "other"
        t.owner = "host-x@other"
        t.epoch = epoch
        t.at = 1
        return t
    }

    @Test func tombstonesFromAHostOfAnotherDomainAreNotKept() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        var update = Hostmesh_V1_XdomainTombstones()
        update.tombstones = [wire("vm-1")]
        let foreign = TombstoneStore.admit(update, fromDomain: "other", localDomain: "home")
        #expect(foreign.tombstones.isEmpty)
        #expect(foreign.dropped.count == 1 && foreign.dropped[0].contains("domain home only"))
        try await manager.learn(tombstones: foreign.tombstones)
        #expect(try await manager.tombstones().isEmpty)
        let own = TombstoneStore.admit(update, fromDomain: "home", localDomain: "home")
        #expect(try await manager.learn(tombstones: own.tombstones) == 1)
        #expect(try await manager.tombstones().map(\.vm) == ["vm-1"])
    }

    @Test func aTombstoneWithAnInsaneEpochIsDropped() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        var update = Hostmesh_V1_XdomainTombstones()
        update.tombstones = [wire("vm-1", epoch: UInt64(Int64.max) + 1), wire("vm-2", epoch: UInt64(Int64.max)), wire("vm-3", epoch: 7)]
        let admitted = TombstoneStore.admit(update, fromDomain: "home", localDomain: "home")
        #expect(admitted.tombstones.map(\.vm) == ["vm-3"])
        #expect(admitted.dropped.count == 2)
        try await manager.learn(tombstones: admitted.tombstones)
        #expect(try await manager.tombstones().map { "\($0.vm)@\($0.epoch)" } == ["vm-3@7"])
    }

    @Test func tombstonesAndMACsBeyondTheCapsAreDropped() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        var update = Hostmesh_V1_XdomainTombstones()
        let macs = (0..<40).map { String(format: "52:54:00:00:01:%02x", $0) }
        update.tombstones = (0..<(TombstoneStore.maxPerMessage + 5)).map { wire("vm-\($0)", macs: $0 == 0 ? macs : ["52:54:00:00:00:01"]) }
        let admitted = TombstoneStore.admit(update, fromDomain: "home", localDomain: "home")
        #expect(admitted.tombstones.count == TombstoneStore.maxPerMessage)
        #expect(admitted.tombstones[0].macs == Array(macs.prefix(TombstoneStore.maxMACs)))
        #expect(admitted.dropped.count == 2)
        #expect(try await manager.learn(tombstones: admitted.tombstones) == TombstoneStore.maxPerMessage)
        let kept = try await manager.tombstones()
        #expect(kept.count == TombstoneStore.maxPerMessage)
        #expect(kept.first { $0.vm == "vm-0" }?.macs.count == TombstoneStore.maxMACs)
    }

    /// §6.10: a VM that left for domain `other` comes back only from `other`, and not as a copy
    /// older than the epoch it went there at.
    @Test func onlyTheDomainAVMWentToCanBringItBack() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        var update = Hostmesh_V1_XdomainTombstones()
        update.tombstones = [wire("vm-1", epoch: 5, macs: ["52:54:00:00:00:01"])]
        try await manager.learn(tombstones: TombstoneStore.admit(update, fromDomain: "home", localDomain: "home").tombstones)
        let boot = VMSpec.Boot.kernel(path: "/k", initrd: nil, commandLine: "")
        let nic = VMSpec.NIC(id: "n0", mac: "52:54:00:00:00:01", attachment: .dgram(localPath: "/a", remotePath: "/b"))
        let back = VMSpec(id: "vm-1", name: "vm-vm-1", memoryMiB: 64, nics: [nic], boot: boot)
        let elsewhere = try #require(try await manager.identityConflict(back, from: "third", epoch: 9))
        #expect(elsewhere.contains("host-x@other") && elsewhere.contains("only domain other"))
        let older = try #require(try await manager.identityConflict(back, from: "other", epoch: 4))
        #expect(older.contains("epoch 4 is older"))
        #expect(try await manager.identityConflict(back, from: "other", epoch: 5) == nil)
        #expect(try await manager.identityConflict(back, from: "other", epoch: 8) == nil)
        #expect(try await manager.identityConflict(back, from: "other", epoch: nil) == nil)
        #expect(try await manager.identityConflict(back, from: "third", epoch: nil) != nil)
        // Another VM with its MAC stays refused, from any domain.
        let other = VMSpec(id: "vm-2", name: "new", memoryMiB: 64, nics: [nic], boot: boot)
        #expect(try await manager.identityConflict(other, from: "other", epoch: 9)?.contains("MAC 52:54:00:00:00:01") == true)
    }

    /// What the store holds for one VM, removed or not (`relayed` shows markers too).
    func held(_ vm: String) async throws -> ControlTypes.Tombstone? {
        try await store.database.read { db in try TombstoneStore.relayed(db).first { $0.vm == vm } }
    }

    func learn(_ t: Hostmesh_V1_XdomainTombstone) async throws -> Int {
        var update = Hostmesh_V1_XdomainTombstones()
        update.tombstones = [t]
        return try await manager.learn(tombstones: TombstoneStore.admit(update, fromDomain: "home", localDomain: "home").tombstones)
    }

    func marker(_ vm: String, epoch: UInt64) -> Hostmesh_V1_XdomainTombstone {
        var t = wire(vm, epoch: epoch)
        t.removed = true
        return t
    }

    /// §6.10.1: a removal marker beats a tombstone of the same VM at the same or a lower epoch,
    /// and is beaten by a tombstone at a higher epoch (a later departure); a removed tombstone
    /// neither stands nor blocks its MAC, and goes on the wire with `removed` set.
    @Test func aRemovalMarkerBeatsTheSameOrALowerEpochAndLosesToAHigherOne() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        #expect(try await learn(wire("vm-1", epoch: 5)) == 1)
        #expect(try await learn(marker("vm-1", epoch: 4)) == 0)                  // lower: the tombstone stands
        #expect(try await manager.tombstones().map(\.vm) == ["vm-1"])
        #expect(try await learn(marker("vm-1", epoch: 5)) == 1)                  // same epoch: removed
        #expect(try await manager.tombstones().isEmpty)
        #expect(try await held("vm-1")?.removed == true)
        #expect(try await learn(wire("vm-1", epoch: 5)) == 0)                    // a relay of the old one: stays removed
        #expect(try await learn(wire("vm-1", epoch: 4)) == 0)
        #expect(try await manager.tombstones().isEmpty)
        // Its MAC is free for a new VM (the ownership record, absent here, would still refuse its id).
        let boot = VMSpec.Boot.kernel(path: "/k", initrd: nil, commandLine: "")
        let nic = VMSpec.NIC(id: "n0", mac: "52:54:00:00:00:01", attachment: .none)
        let reuse = VMSpec(id: "vm-new", name: "new", memoryMiB: 64, nics: [nic], boot: boot)
        #expect(try await store.database.read { db in try TombstoneStore.conflict(db, with: reuse) } == nil)
        #expect(try await manager.identityConflict(reuse, from: "other", epoch: 9) == nil)
        // On the wire it goes as a marker.
        let sent = try await store.database.read { db in try TombstoneStore.envelope(db) }.xdomainTombstones.tombstones
        #expect(sent.map(\.vmID) == ["vm-1"] && sent.map(\.removed) == [true] && sent.map(\.epoch) == [5])
        // A later departure (higher epoch) stands again, and blocks the MAC again.
        #expect(try await learn(wire("vm-1", epoch: 7)) == 1)
        #expect(try await manager.tombstones().map(\.vm) == ["vm-1"])
        #expect(try await store.database.read { db in try TombstoneStore.conflict(db, with: reuse) }?.contains("MAC 52:54:00:00:00:01") == true)
        // A marker heard for a VM never held is kept (so a late tombstone of that epoch stays out).
        #expect(try await learn(marker("vm-2", epoch: 3)) == 1)
        #expect(try await learn(wire("vm-2", epoch: 3)) == 0)
        #expect(try await manager.tombstones().map(\.vm) == ["vm-1"])
    }

    @Test func theMarkerRulesTable() {
        #expect(TombstoneStore.supersedes(epoch: 5, removed: true, heldEpoch: 5, heldRemoved: false))
        #expect(TombstoneStore.supersedes(epoch: 6, removed: true, heldEpoch: 5, heldRemoved: false))
        #expect(!TombstoneStore.supersedes(epoch: 4, removed: true, heldEpoch: 5, heldRemoved: false))
        #expect(!TombstoneStore.supersedes(epoch: 5, removed: false, heldEpoch: 5, heldRemoved: true))
        #expect(TombstoneStore.supersedes(epoch: 6, removed: false, heldEpoch: 5, heldRemoved: true))
        #expect(!TombstoneStore.supersedes(epoch: 5, removed: true, heldEpoch: 5, heldRemoved: true))
        #expect(!TombstoneStore.supersedes(epoch: 5, removed: false, heldEpoch: 5, heldRemoved: false))
    }

    /// The operator's removal: by id or by name, only of one that stands, refusing an unknown or
    /// ambiguous one with a message naming the fix.
    @Test func anOperatorRemovesAStandingTombstoneByNameOrId() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        _ = try await learn(wire("vm-1", epoch: 5))
        _ = try await learn(wire("vm-2", epoch: 2))
        _ = try await learn(wire("vm-3", epoch: 2))
        do {
            _ = try await manager.removeTombstone("nothing")
            Issue.record("an unknown tombstone was removed")
        } catch let error as ControlError {
            #expect(error.code == "not_found" && error.message.contains("domain federation tombstones"), "\(error)")
        }
        let removed = try await manager.removeTombstone("vm-vm-1")                // by name
        #expect(removed.vm == "vm-1" && removed.removed && removed.epoch == 5)
        #expect(try await held("vm-1")?.removed == true)
        #expect(try await manager.removeTombstone("vm-2").vm == "vm-2")         // by id
        #expect(try await manager.tombstones().map(\.vm) == ["vm-3"])
        do {
            _ = try await manager.removeTombstone("vm-1")                          // already removed
            Issue.record("a removed tombstone was removed again")
        } catch let error as ControlError {
            #expect(error.code == "not_found", "\(error)")
        }
    }
}
