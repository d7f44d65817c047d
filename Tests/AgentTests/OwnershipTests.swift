import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Ownership records (Protocol.md §6.6) between real agents: the destination's commit reaches the
/// source by gossip even when the migration channel says nothing, and fences the source's copy.
extension MigrationEndToEndTests {
    func ownership(_ agent: AgentProcess) async throws -> [ControlTypes.Ownership] {
        try await agent.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
    }

    /// Polls `agent`'s ledger until `vm` has the expected owner and epoch.
    func awaitOwner(_ agent: AgentProcess, vm: String, owner: String, epoch: UInt64) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if try await ownership(agent).contains(ControlTypes.Ownership(vm: vm, owner: owner, epoch: epoch)) { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        let lines = agent.log.split(separator: "\n").filter { $0.contains("member") || $0.contains("hello") || $0.contains("ownership") || $0.contains("greet") }
        let known = try await ownership(agent)
        Issue.record("\(agent.hostID) never learned that \(owner) owns \(vm) at epoch \(epoch): \(known)\n\(lines.suffix(20).joined(separator: "\n"))")
    }

    /// A host that greets another learns what the greeted one already owned: the updates sent
    /// after a hello reply are read by the greeter too (they used to be dropped, so a record
    /// reached the greeter only when it next changed).
    @Test func aGreeterLearnsWhatTheGreetedHostAlreadyOwns() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let b = try await mesh.start("node-b")
        let vm = spec("early")
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: false), as: VMInfo.self)
        try await awaitOwner(b, vm: vm.id, owner: "node-b", epoch: 1)
        // Past node-b's ownership sync round (every 2 s): it has sent this change to nobody and
        // will not send it again. node-a, the smaller host id, then greets node-b.
        try await Task.sleep(for: .seconds(3))
        let a = try await mesh.start("node-a", arguments: ["--join", b.address])
        try await awaitOwner(a, vm: vm.id, owner: "node-b", epoch: 1)
    }

    @Test func destinationCommitFencesTheSourceCopyBeforeTheAnswerArrives() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        // b stops right after journaling its commit, before it answers a.
        let b = try await mesh.start("node-b", arguments: ["--join", a.address], environment: ["HOSTMESH_TEST_PAUSE_AT": "destination:committed"])
        let vm = spec("owned")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "owned", after: 1)
        try await awaitOwner(b, vm: vm.id, owner: "node-a", epoch: 1)

        let migration = Task { try await migrate("owned", from: a, to: b) }
        let paused = b.stateDirectory + "/test-paused-at"
        let deadline = ContinuousClock.now + .seconds(60)
        while !FileManager.default.fileExists(atPath: paused), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(FileManager.default.fileExists(atPath: paused))

        // The commit answer is held back, but b's record reaches a and marks a's copy stale.
        try await awaitOwner(a, vm: vm.id, owner: "node-b", epoch: 2)
        let held = try await a.control.call("vm.list", Empty(), as: [VMInfo].self).first
        #expect(held?.problem?.contains("stale") == true)
        // A bare resume-here (no confirmation that the destination is fenced) is refused by the agent itself.
        await #expect {
            _ = try await a.control.call("vm.resolve", ControlTypes.Resolve(vm: "owned", action: .resumeHere), as: ControlTypes.Text.self)
        } throws: { error in "\(error)".contains("destinationFenced") }
        // An operator who resumes the source now would make two copies: refused, naming the owner.
        await #expect {
            _ = try await a.control.call("vm.resolve", ControlTypes.Resolve(vm: "owned", action: .resumeHere, destinationFenced: true),
                                         as: ControlTypes.Text.self)
        } throws: { error in "\(error)".contains("node-b owns owned at epoch 2") }
        await #expect(throws: ControlError.self) {
            _ = try await a.control.call("vm.start", ControlTypes.VMReference(vm: "owned"), as: VMInfo.self)
        }

        _ = FileManager.default.createFile(atPath: b.stateDirectory + "/test-continue", contents: Data())
        _ = try await migration.value
        let (bootOnB, after) = try await heartbeat(b, "owned", after: before)
        #expect(bootOnB == boot && after > before)
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        #expect(try await ownership(a).contains(ControlTypes.Ownership(vm: vm.id, owner: "node-b", epoch: 2)))
    }
}
