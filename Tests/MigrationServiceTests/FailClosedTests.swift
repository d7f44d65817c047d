import ControlAPI
import Foundation
import Hypervisor
import MeshWire
import Migration
import MigrationService
import Testing

/// A safety check that cannot be made refuses (issue: fail closed). Each test breaks the store
/// in-process, the way a full or failing disk would, and checks the refusal.
@Suite struct FailClosedTests {
    func prepare(_ id: String) throws -> Hostmesh_V1_AgentEnvelope.OneOf_Body {
        var prepare = Hostmesh_V1_MigrationPrepare()
        prepare.migrationID = id
        prepare.vmSpecJson = String(decoding: try JSONEncoder().encode(VMSpec(id: "vm-1", name: "web", memoryMiB: 64, boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""))), as: UTF8.self)
        prepare.settingsJson = String(decoding: try JSONEncoder().encode(MigrationSettings()), as: UTF8.self)
        prepare.accelerator = "tcg"
        prepare.epoch = 1
        return .migrationPrepare(prepare)
    }

    @Test func admissionRefusesWhenOwnershipCannotBeRead() async throws {
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(failures: JournalFailures(ownership: true)), vms: vms)
        let reply = await coordinator.handle(try prepare("m-1"), from: "node-a")
        guard case .migrationPrepared(let prepared)? = reply?.body else {
            Issue.record("no answer to the prepare")
            return
        }
        #expect(prepared.error.contains("cannot read its ownership records"), "\(prepared.error)")
        #expect(await vms.reserved.isEmpty, "the VM id was reserved although admission was refused")
        #expect(await coordinator.inFlight == 0)
    }

    @Test func admissionWithReadableOwnershipGoesOn() async throws {
        // The same request with a working store gets past the ownership check (and fails only
        // at QEMU, which this test does not have): the refusal above is the store's doing.
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        let reply = await coordinator.handle(try prepare("m-2"), from: "node-a")
        guard case .migrationPrepared(let prepared)? = reply?.body else {
            Issue.record("no answer to the prepare")
            return
        }
        #expect(await vms.reserved == ["vm-1"])
        #expect(prepared.error.contains("cannot start the destination QEMU"), "\(prepared.error)")
    }

    @Test func inDoubtHoldFailureKeepsTheVMMarkedAndReported() async throws {
        let row = JournaledMigration(id: "m-3", vmID: "vm-3", vmName: "db", role: .source, peer: "node-z", peerAddress: nil,
                                     phase: SourceMigration.Phase.committing.rawValue, epoch: 4, error: nil, ended: false)
        let journal = FakeJournal(failures: JournalFailures(hold: true), rows: [row])
        let vms = FakeRegistry(known: [RegisteredVM(id: "vm-3", name: "db", epoch: 4, hold: nil, spec: nil)])
        let logs = CollectedLogs()
        let coordinator = Fixtures.coordinator(journal: journal, vms: vms, logs: logs)
        let rows = try await coordinator.prepareRecovery()
        #expect(await vms.recovering == ["vm-3"])
        await coordinator.recover(rows)
        // The hold could not be written, and the peer cannot be asked: the VM stays marked in doubt.
        #expect(await vms.endedRecovering["vm-3"] == true)
        #expect(journal.rows.withLockedValue { $0["m-3"]?.phase } == SourceMigration.Phase.inDoubt.rawValue)
        #expect(journal.holds.withLockedValue { $0.isEmpty })
        #expect(logs.text.contains("cannot journal the in-doubt hold"), "\(logs.text)")
        #expect(logs.text.contains("migration.id=m-3"), "\(logs.text)")
    }

    @Test func aQueryIsNotAnsweredWhenTheJournalCannotBeRead() async throws {
        var query = Hostmesh_V1_MigrationQuery()
        query.migrationID = "m-4"
        let broken = Fixtures.coordinator(journal: FakeJournal(failures: JournalFailures(reads: true)), vms: FakeRegistry())
        // `unknown` would let the source take the guest back while it may run here.
        #expect(await broken.handle(.migrationQuery(query), from: "node-a") == nil)
        let working = Fixtures.coordinator(journal: FakeJournal(), vms: FakeRegistry())
        guard case .migrationVerdict(let verdict)? = await working.handle(.migrationQuery(query), from: "node-a")?.body else {
            Issue.record("a working store answers")
            return
        }
        #expect(verdict.verdict == .unknown)
    }

    @Test func recoveryRefusesToStartWhenTheJournalCannotBeRead() async {
        let coordinator = Fixtures.coordinator(journal: FakeJournal(failures: JournalFailures(reads: true)), vms: FakeRegistry())
        await #expect(throws: MigrationServiceError.self) { _ = try await coordinator.prepareRecovery() }
    }

    @Test func unsafeResolveDecisionsNeedTheirConfirmation() async {
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: FakeRegistry())
        for decision in [ResolveDecision.resumeHere(destinationFenced: false), .releaseHere(destinationRunsIt: false)] {
            await #expect {
                _ = try await coordinator.resolve("db", decision: decision)
            } throws: { error in
                guard let error = error as? ControlError else { return false }
                return error.code == "bad_request" && (error.message.contains("destinationFenced") || error.message.contains("destinationRunsIt"))
            }
        }
    }
}
