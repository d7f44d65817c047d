import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Journal before acting (Protocol.md §6.4): when the source cannot record `committing` (a full or
/// broken disk, simulated by a test hook), it must not send the commit; the migration aborts, the
/// destination discards its copy, and the guest goes on at the source at the same epoch.
extension MigrationEndToEndTests {
    @Test func aCommitThatCannotBeJournaledIsNeverSent() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", environment: ["HOSTMESH_TEST_FAIL_JOURNAL_AT": "source:committing"])
        let b = try await mesh.start("node-b")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("unjournaled"), start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "unjournaled", after: 1)

        await #expect {
            _ = try await migrate("unjournaled", from: a, to: b)
        } throws: { error in "\(error)".contains("cannot write the migration journal") }

        let (bootAfter, _) = try await heartbeat(a, "unjournaled", after: before)
        #expect(bootAfter == boot, "the guest rebooted")
        let info = try await a.control.call("vm.show", ControlTypes.VMReference(vm: "unjournaled"), as: VMDetails.self)
        #expect(info.info.qemuStatus == "running" && info.info.epoch == 1)
        #expect(info.migrations.first?.phase == "aborted")
        // The destination never got a commit: nothing of the guest is left there.
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline, !pids(ofProcessesMentioning: b.stateDirectory + "/vms/").isEmpty {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(pids(ofProcessesMentioning: b.stateDirectory + "/vms/").isEmpty)
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        #expect(try await b.control.call("migrations", Empty(), as: [MigrationRecord].self).map(\.phase) == ["discarded"])
    }
}
