@testable import Agent
import Foundation
import GRDB
import HA
import Hypervisor
import Logging
import Testing

/// The restart journal write (Protocol.md §9.1) in-process, on a real store: it moves the VM to
/// the next epoch only when nothing changed meanwhile and no other host is known to own it at that
/// epoch, claims the VM while it does, and a store that cannot be written starts nothing.
@Suite(.timeLimit(.minutes(1)))
struct RestartJournalTests {
    final class Fixture {
        let state: String
        let store: AgentStore
        let manager: VMManager
        let id = "vm-ha"

        init(epoch: Int64 = 3, desired: String = "running") async throws {
            state = FileManager.default.temporaryDirectory.appendingPathComponent("hm-restart-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            store = try AgentStore(stateDirectory: state)
            manager = VMManager(store: store, stateDirectory: state, logger: Logger(label: "test"))
            var spec = VMSpec(id: id, name: "ha", memoryMiB: 64, boot: .kernel(path: "/k", initrd: nil, commandLine: ""))
            spec.restart = .onFailure
            let row = try StoredVM(spec: spec, desiredState: desired, epoch: epoch)
            try await store.database.write { db in try row.insert(db) }
        }

        func row() async throws -> StoredVM? {
            let id = id
            return try await store.database.read { db in try StoredVM.fetchOne(db, key: id) }
        }

        deinit { try? FileManager.default.removeItem(atPath: state) } // test cleanup
    }

    let record = RestartRecord(previousEpoch: 3, epoch: 4, count: 1, reason: .killed(signal: 9))

    @Test func theRestartIsJournaledAtTheNextEpochWithItsReasonAndClaimsTheVM() async throws {
        let f = try await Fixture()
        #expect(try await f.manager.journalRestart(f.id, record, hostID: "node-a"))
        let row = try #require(try await f.row())
        #expect(row.epoch == 4 && row.restarts == 1 && row.lastRestartReason == "QEMU was killed by signal 9" && row.lastRestartAt != nil)
        // Claimed until the start ends: an operator's start meanwhile is refused with the reason.
        await #expect { _ = try await f.manager.start("ha") } throws: { "\($0)".contains("being restarted after its QEMU died") }
        #expect(try await f.manager.info(f.id).state == "restarting")
    }

    @Test func aVMThatMovedOnIsNotRestarted() async throws {
        // Stopped meanwhile, at another epoch, held, given up, or owned elsewhere at that epoch.
        let changes = [
            "UPDATE vm SET desiredState = 'stopped'",
            "UPDATE vm SET epoch = 5",
            "UPDATE vm SET hold = 'node-b owns this VM at epoch 9'",
            "UPDATE vm SET restartFailure = 'limit'",
            "INSERT INTO ownership (vmId, owner, epoch, updatedAt) VALUES ('vm-ha', 'node-b', 4, 0)",
        ]
        for change in changes {
            let f = try await Fixture()
            try await f.store.database.write { db in try db.execute(sql: change) }
            #expect(try await f.manager.journalRestart(f.id, record, hostID: "node-a") == false, "\(change)")
            let row = try #require(try await f.row())
            #expect(row.restarts == 0, "\(change): journaled anyway")
            // Not claimed: the VM is free for whatever moved it on.
            #expect(try await f.manager.info(f.id).state != "restarting", "\(change)")
        }
    }

    @Test func aRecordOfThisHostItselfDoesNotBlockTheRestart() async throws {
        let f = try await Fixture()
        try await f.store.database.write { db in
            try db.execute(sql: "INSERT INTO ownership (vmId, owner, epoch, updatedAt) VALUES ('vm-ha', 'node-a', 7, 0)")
        }
        #expect(try await f.manager.journalRestart(f.id, record, hostID: "node-a"))
    }

    @Test func aStoreThatCannotBeWrittenStartsNothing() async throws {
        let f = try await Fixture()
        try await f.store.database.write { db in
            try db.execute(sql: "CREATE TRIGGER broken BEFORE UPDATE ON vm BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
        }
        await #expect { _ = try await f.manager.journalRestart(f.id, record, hostID: "node-a") } throws: { "\($0)".contains("disk I/O error") }
        #expect(try await f.row()?.epoch == 3)
        // The claim was let go: the operator can act.
        #expect(try await f.manager.info(f.id).state != "restarting")
    }

    @Test func givingUpIsRecordedAndShownUntilAnOperatorActs() async throws {
        let f = try await Fixture()
        try await f.manager.giveUpRestart(f.id, reason: "QEMU was killed by signal 9; not restarted: 3 restarts within 10 min already")
        let info = try await f.manager.info(f.id)
        #expect(info.state == "failed" && info.problem?.hasPrefix("lost: no copy runs: QEMU was killed by signal 9") == true, "\(info)")
        _ = try await f.manager.stop("ha")
        #expect(try await f.row()?.restartFailure == nil)
        #expect(try await f.manager.info(f.id).state == "stopped")
    }
}
