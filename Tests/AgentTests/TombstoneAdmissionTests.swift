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
}
