import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// An agent killed (SIGKILL) in the middle of a handover and restarted at a NEW channel address
/// (another port: a host that came back elsewhere, or a restart without a fixed --listen). The
/// full fault matrix (FaultInjectionTests) restarts agents where they were; these cases show that
/// recovery asks the peer where membership says it is now (Protocol.md §6.5) and that the peer
/// greets the moved member again. Once things settle: exactly one copy runs, the same boot, its
/// heartbeat advances, and both hosts agree on owner and epoch.
extension MigrationEndToEndTests {
    enum Fault: Sendable, CustomStringConvertible {
        case killSource(at: String)
        case killDestination(at: String)

        var description: String {
            switch self {
            case .killSource(let p): "kill the source agent at \(p)"
            case .killDestination(let p): "kill the destination agent at \(p)"
            }
        }
    }

    /// Where the guest must end up after the fault, and at which epoch.
    struct Outcome: Sendable {
        var onDestination: Bool
        var epoch: UInt64
    }

    static let faultMatrix: [(Fault, Outcome)] = [
        // The source comes back elsewhere while the handover is in doubt: it asks the destination.
        (.killSource(at: "source:committing"), Outcome(onDestination: false, epoch: 3)),
        // The destination comes back elsewhere after its commit: the in-doubt source must find it
        // at its new address, through membership, to learn that the guest runs there.
        (.killDestination(at: "destination:committed"), Outcome(onDestination: true, epoch: 2)),
    ]

    @Test(arguments: 0..<faultMatrix.count)
    func handoverSurvivesAnAgentRestartingAtANewAddress(_ index: Int) async throws {
        let (fault, expected) = Self.faultMatrix[index]
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        var sourceEnvironment: [String: String] = [:], destinationEnvironment: [String: String] = [:]
        switch fault {
        case .killSource(let p): sourceEnvironment["HOSTMESH_TEST_PAUSE_AT"] = p
        case .killDestination(let p): destinationEnvironment["HOSTMESH_TEST_PAUSE_AT"] = p
        }
        var a = try await mesh.start("node-a", environment: sourceEnvironment)
        var b = try await mesh.start("node-b", arguments: ["--join", a.address], environment: destinationEnvironment)
        let vm = spec("faulty", work: "heartbeat,dirty:20")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "faulty", after: 1)

        let source = a, destination = b
        let migration = Task { try await migrate("faulty", from: source, to: destination) }
        switch fault {
        case .killSource(let point):
            try await awaitPause(a, at: point)
            a.kill()
            _ = await migration.result
            a = try await mesh.start("node-a", arguments: ["--join", b.address])
        case .killDestination(let point):
            try await awaitPause(b, at: point)
            b.kill()
            _ = await migration.result // the source sees the channel end
            b = try await mesh.start("node-b", arguments: ["--join", a.address])
        }

        // Settle: the guest runs where the recovery rules say, exactly once, the same boot.
        let (winner, loser) = expected.onDestination ? (b, a) : (a, b)
        try await awaitSettled(vm: "faulty", running: winner, absent: loser, context: "\(fault)")
        let (bootAfter, after) = try await heartbeat(winner, "faulty", after: before)
        #expect(bootAfter == boot, "the guest rebooted (\(fault))")
        #expect(after > before)
        try await awaitOwner(winner, vm: vm.id, owner: winner.hostID, epoch: expected.epoch)
        try await awaitOwner(loser, vm: vm.id, owner: winner.hostID, epoch: expected.epoch)
    }

    /// Waits for an agent's fault hook to report that it stopped at `point`.
    func awaitPause(_ agent: AgentProcess, at point: String) async throws {
        let marker = agent.stateDirectory + "/test-paused-at"
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: marker, encoding: .utf8), text == point { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ControlError.failed("\(agent.hostID) never reached \(point)")
    }

    /// Waits until `running` runs the VM (QEMU status running, no hold) and `absent` has no
    /// record of it; fails if both ever run it.
    func awaitSettled(vm name: String, running: AgentProcess, absent: AgentProcess, context: String) async throws {
        let deadline = ContinuousClock.now + .seconds(45)
        var last = ""
        while ContinuousClock.now < deadline {
            let here = try await running.control.call("vm.list", Empty(), as: [VMInfo].self).filter { $0.name == name }
            let there = try await absent.control.call("vm.list", Empty(), as: [VMInfo].self).filter { $0.name == name }
            let runningHere = here.filter { $0.qemuStatus == "running" }.count
            let runningThere = there.filter { $0.qemuStatus == "running" }.count
            #expect(runningHere + runningThere <= 1, "two copies run (\(context))")
            // No QEMU of any kind may linger on the host that does not own the guest.
            let leftovers = pids(ofProcessesMentioning: absent.stateDirectory + "/vms/").count
            if runningHere == 1, here.first?.problem == nil, there.isEmpty, leftovers == 0 { return }
            last = "\(running.hostID): \(here.map { "\($0.state)/\($0.qemuStatus ?? "-")/\($0.problem ?? "")" }); "
                + "\(absent.hostID): \(there.map { "\($0.state)/\($0.qemuStatus ?? "-")" }), \(leftovers) QEMU(s)"
            try await Task.sleep(for: .milliseconds(200))
        }
        let interesting = { (agent: AgentProcess) in
            agent.log.split(separator: "\n").filter { $0.contains("migration") || $0.contains("doubt") || $0.contains("recover") || $0.contains("member") }
                .suffix(25).joined(separator: "\n")
        }
        Issue.record("did not settle (\(context)): \(last)\n\(running.hostID):\n\(interesting(running))\n\(absent.hostID):\n\(interesting(absent))")
    }
}
