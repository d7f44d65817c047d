@testable import Agent
import ControlAPI
import Foundation
import GRDB
import Hypervisor
import Logging
import MeshWire
import Testing

/// A candidate host's answer to a handover query (Protocol.md §10.12) against its real SQLite
/// store: only the VM's owner can fence its offer.
@Suite struct HandoverQueryTests {
    let state: String
    let store: AgentStore
    let manager: VMManager
    let id = "0b7c5e1e-7d3f-4c1e-9a55-0d2f5b1c9e01"

    init() throws {
        state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-handover-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        store = try AgentStore(stateDirectory: state)
        manager = VMManager(store: store, stateDirectory: state, logger: Logger(label: "test"))
    }

    func know(owner: String, epoch: Int64) async throws {
        let record = StoredOwnership(vmId: id, owner: owner, epoch: epoch, updatedAt: 0)
        try await store.database.write { db in try record.save(db) }
    }

    func known() async throws -> StoredOwnership? {
        let id = id
        return try await store.database.read { db in try StoredOwnership.fetchOne(db, key: id) }
    }

    @Test func theKnownOwnerFencesItsOffer() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        try await know(owner: "node-a", epoch: 4)
        #expect(try await manager.answerHandoverQuery(id, epoch: 5, from: "node-a") == nil)
        #expect(try await known().map { ($0.owner, $0.epoch) } ?? ("", 0) == ("node-a", 5))
    }

    @Test func anotherMemberCannotFenceWhatItDoesNotOwn() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        try await know(owner: "node-a", epoch: 4)
        await #expect { _ = try await manager.answerHandoverQuery(id, epoch: 5, from: "node-x") }
            throws: { "\($0)".contains("knows node-a as its owner") }
        #expect(try await known().map { ($0.owner, $0.epoch) } ?? ("", 0) == ("node-a", 4), "nothing recorded")
    }

    @Test func withNoRecordTheAskerIsBelieved() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        #expect(try await manager.answerHandoverQuery(id, epoch: 3, from: "node-a") == nil)
        #expect(try await known().map { ($0.owner, $0.epoch) } ?? ("", 0) == ("node-a", 3))
    }

    @Test func anOlderRecordOfAnotherOwnerRefusesToo() async throws {
        // Fail closed: the asker may be the owner this host has not heard of yet, or not.
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        try await know(owner: "node-c", epoch: 1)
        await #expect { _ = try await manager.answerHandoverQuery(id, epoch: 9, from: "node-x") }
            throws: { "\($0)".contains("knows node-c as its owner") }
        #expect(try await known().map { ($0.owner, $0.epoch) } ?? ("", 0) == ("node-c", 1))
    }

    @Test func anOfferFromAMemberThatIsNotTheOwnerIsRefusedAndNothingIsDefined() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        try await know(owner: "node-a", epoch: 4)
        let spec = VMSpec(id: id, name: "offered", memoryMiB: 64, boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0"))
        await #expect { _ = try await manager.receiveHandover(spec, epoch: 50, from: "node-x") }
            throws: { "\($0)".contains("knows node-a as its owner") }
        let id = id
        #expect(try await store.database.read { db in try StoredVM.fetchOne(db, key: id) } == nil)
    }

    @Test func anOfferThatTookEffectIsReportedTaken() async throws {
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        try await know(owner: "node-b", epoch: 5)
        #expect(try await manager.answerHandoverQuery(id, epoch: 5, from: "node-a") == 5)
    }
}

/// Epochs from peers are checked, never converted with a trap (review finding: one frame with
/// `epoch = UInt64.max` killed the agent).
@Suite struct WireEpochTests {
    @Test func anEpochNoRealVMCanHaveIsRefusedWithItsValue() throws {
        #expect(try wireEpoch(7, "epoch") == 7)
        #expect(throws: ControlError.self) { try wireEpoch(UInt64.max, "epoch") }
        #expect(throws: ControlError.self) { try wireEpoch(UInt64(Int64.max), "epoch") }
    }

    @Test func anOwnershipRecordWithSuchAnEpochIsDroppedNotATrap() async throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-wire-epoch-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: state) } // a temporary directory
        let store = try AgentStore(stateDirectory: state)
        let ledger = OwnershipLedger(store: store, hostID: "node-b", logger: Logger(label: "test"))
        var record = Hostmesh_V1_OwnershipRecord()
        record.vmID = "0b7c5e1e-7d3f-4c1e-9a55-0d2f5b1c9e02"
        record.owner = "node-x"
        record.epoch = UInt64.max
        let applied = try await ledger.apply([record], from: "node-x")
        #expect(applied.dropped.map(\.reason) == ["epoch \(UInt64.max) is not a valid epoch"])
        #expect(try await ledger.records().isEmpty)
    }
}
