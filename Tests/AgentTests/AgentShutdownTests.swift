import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// SIGTERM and SIGINT stop a real `hostmesh agent` gracefully (issue 19 finding 8: it used to
/// log "Signal caught" and keep running): the process exits 0 within a bound, the other member
/// sees it `left` (not dead), and its VMs keep running, to be re-adopted by the next agent.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct AgentShutdownTests {
    /// A hang is the failure this guards against, not a timing target: generous.
    static let exitBound: Duration = .seconds(10)

    func spec(_ name: String) -> VMSpec {
        VMSpec(id: UUID().uuidString.lowercased(), name: name, memoryMiB: 128,
               boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
               accelerator: .tcg, extraKernelArguments: ["hm.work=heartbeat"])
    }

    func status(of host: String, seenBy agent: AgentProcess) async throws -> String? {
        try await agent.control.call("members", Empty(), as: [MemberRow].self).first { $0.host == host }?.status
    }

    /// Polls until `agent` sees `host` with `status`.
    func eventually(_ agent: AgentProcess, sees host: String, as status: String, within limit: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + limit
        var last: String?
        while ContinuousClock.now < deadline {
            last = try await self.status(of: host, seenBy: agent)
            if last == status { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("\(agent.hostID) did not see \(host) \(status) within \(limit) (last: \(last ?? "unknown"))")
    }

    /// Starts a two-agent mesh (`node-b` joins `node-a`) and waits until each sees the other alive.
    func twoAgents(_ mesh: TestMesh) async throws -> (AgentProcess, AgentProcess) {
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b", arguments: ["--join", a.address])
        try await eventually(a, sees: "node-b", as: "alive")
        try await eventually(b, sees: "node-a", as: "alive")
        return (a, b)
    }

    @Test func sigtermLeavesTheMeshAndKeepsTheVMForTheNextAgent() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let (a, b) = try await twoAgents(mesh)
        let vm = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("keep"), start: true), as: VMInfo.self)
        let qemu = try #require(vm.pid)

        kill(a.pid, SIGTERM)
        let exit = try await a.waitForExit(within: Self.exitBound)
        #expect(exit == .exited(0), "log:\n\(a.log)")
        try await eventually(b, sees: "node-a", as: "left")
        #expect(isAlive(qemu), "the VM's QEMU stopped with its agent")

        let again = try await mesh.start("node-a", arguments: ["--join", b.address])
        let adopted = try await again.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(adopted.map(\.pid) == [qemu] && adopted.map(\.state) == ["running"], "after the restart: \(adopted)")
    }

    @Test func sigintStopsTheAgentToo() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let (a, b) = try await twoAgents(mesh)
        kill(b.pid, SIGINT)
        let exit = try await b.waitForExit(within: Self.exitBound)
        #expect(exit == .exited(0), "log:\n\(b.log)")
        try await eventually(a, sees: "node-b", as: "left")
    }
}

/// How a process ended.
enum ProcessExit: Equatable {
    case exited(Int32)
    case signalled(Int32)
}

extension AgentProcess {
    /// Waits for the agent to exit and reaps it; fails if it still runs after `limit`.
    func waitForExit(within limit: Duration) async throws -> ProcessExit {
        let start = ContinuousClock.now
        while ContinuousClock.now < start + limit {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                print("AgentShutdownTests: \(hostID) exited \(ContinuousClock.now - start) after the signal")
                return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ControlError.failed("agent \(hostID) still runs \(limit) after the signal:\n\(log)")
    }
}

/// True if `pid` is a live process (not a zombie).
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    return !stat.contains(") Z ")
}
