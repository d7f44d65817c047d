@testable import Agent
import ControlAPI
import Foundation
import HA
import Hypervisor
import Testing

/// The lease keeper wired into a real agent (Protocol.md §9.2) with real QEMU: a VM on shared
/// storage runs only once its keeper holds the lease, as the keeper's child; the lease is renewed
/// while it runs, also with the agent killed alone; a keeper killed alone takes its QEMU with it
/// (restarted in place under a new keeper), and so do a keeper and agent killed together; when
/// the lease writes fail (the storage cut off) the keeper kills the copy, and the agent does not
/// restart it in place; an operator's start takes a new lease, a stop releases it (QEMU quits).
/// (A leased VM's migration: `LeasedMigrationTests`.)
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct LeaseFenceTests {
    @Test func aHostThatCannotRenewItsLeaseKillsItsCopy() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let shared = mesh.root + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        let disk = shared + "/disk.raw"
        try Data(count: 8 << 20).write(to: URL(fileURLWithPath: disk))
        let failFile = mesh.root + "/fail-leases"
        let arguments = TakeoverTests.leases + ["--metrics-listen", "127.0.0.1:0"]
        var agent = try await mesh.start("node-a", arguments: arguments, environment: ["HOSTMESH_TEST_LEASE_FAIL_IF": failFile])
        let spec = VMSpec(id: UUID().uuidString.lowercased(), name: "leased", memoryMiB: 128,
                          disks: [.init(path: disk, format: .raw, shared: true)],
                          boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
                          accelerator: .tcg, extraKernelArguments: ["hm.work=heartbeat,disk"])
        _ = try await agent.control.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        let files = LeaseFiles(directory: shared + "/.hostmesh")
        let runtime = agent.stateDirectory + "/vms/" + spec.id
        func lease() throws -> LeaseRecord? { try files.read(vm: spec.id, host: "node-a") }
        func details() async throws -> VMDetails { try await agent.control.call("vm.show", ControlTypes.VMReference(vm: "leased"), as: VMDetails.self) }
        func eventually(_ seconds: Int, _ condition: () async throws -> Bool) async throws -> Bool {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if try await condition() { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return try await condition()
        }

        // Running under its lease, which is renewed.
        let first = try #require(try lease(), "no lease file in \(shared)/.hostmesh")
        #expect(first.epoch == 1 && first.held)
        #expect(try await eventually(10) { (try lease()?.counter ?? 0) > first.counter + 3 })
        #expect(try await details().restartElsewhere?.hasPrefix("yes: this host holds its lease") == true)
        // How close its renewals come to the fence is on /metrics (the keeper's report).
        let scrape = "http://\(try PrometheusScrapeTests().metricsAddress(agent))/metrics"
        #expect(try await eventually(10) {
            try await DRSMoveFailureTests.counter(scrape, "hostmesh_vm_lease_fence_seconds", ["vm=\"leased\""]) == 1.5
        })
        let stretch = try await DRSMoveFailureTests.counter(scrape, "hostmesh_vm_lease_renewal_seconds", ["vm=\"leased\"", "figure=\"longest_stretch\""])
        #expect(stretch >= 0.25 && stretch < 1.5, "longest stretch \(stretch) s")
        #expect(try await DRSMoveFailureTests.counter(scrape, "hostmesh_vm_lease_renewed_ago_seconds", ["vm=\"leased\""]) < 1.5)
        let firstQEMU = try #require(try await details().info.pid)
        // QEMU is its keeper's child (it dies with it), not the agent's.
        let keeper = try #require(VMManager.leaseKeeperPid(spec.id, runtime: runtime))
        #expect(parent(of: firstQEMU) == keeper, "QEMU's parent is \(String(describing: parent(of: firstQEMU))), not its keeper \(keeper)")

        // The keeper killed alone: its QEMU dies with it (no copy runs unleased); the agent
        // restarts the VM in place at the next epoch, under a new keeper.
        kill(keeper, SIGKILL)
        #expect(try await eventually(10) { ProcessProbe.startTime(firstQEMU) == nil }, "the copy outlived its keeper")
        let back = try await eventually(30) { let info = try await details().info; return info.state == "running" && info.pid != firstQEMU }
        let now = try await details().info
        #expect(back, "not restarted after its keeper died: \(now)")
        let qemu = try #require(try await details().info.pid)
        let restarted = try lease()
        #expect(restarted?.epoch == 2, "\(String(describing: restarted))\n\(agent.log.suffix(5000))")
        #expect((VMManager.leaseKeeperPid(spec.id, runtime: runtime) ?? keeper) != keeper, "no new keeper")
        let renewed = try #require(try lease()).counter
        #expect(try await eventually(10) { (try lease()?.counter ?? 0) > renewed + 3 })

        // The agent killed alone: QEMU runs on and its keeper keeps renewing.
        agent.kill()
        let before = try #require(try lease()).counter
        #expect(try await eventually(10) { (try lease()?.counter ?? 0) > before + 3 }, "the lease stopped with the agent")
        #expect(ProcessProbe.startTime(qemu) != nil, "QEMU died with the agent")
        agent = try await mesh.restart(agent, arguments: arguments, environment: ["HOSTMESH_TEST_LEASE_FAIL_IF": failFile])
        #expect(try await details().info.state == "running")

        // The storage is cut off: the keeper kills the copy; the agent does not restart it.
        #expect(FileManager.default.createFile(atPath: failFile, contents: nil))
        #expect(try await eventually(20) { ProcessProbe.startTime(qemu) == nil }, "the copy survived a lease it could not renew")
        #expect(try await eventually(20) { try await details().info.state == "failed" })
        let down = try await details().info
        #expect(down.problem?.contains("fenced: no lease renewal completed") == true, "\(down.problem ?? "")")
        try await Task.sleep(for: .seconds(2))
        #expect(try await details().info.state == "failed", "restarted in place after a fence")
        #expect(pids(ofProcessesMentioning: runtime + "/").isEmpty)

        // The storage is back: an operator's start takes a new lease; a stop releases it.
        try FileManager.default.removeItem(atPath: failFile)
        let started = try await agent.control.call("vm.start", ControlTypes.VMReference(vm: "leased"), as: VMInfo.self)
        #expect(started.state == "running")
        #expect(try lease()?.held == true)
        _ = try await agent.control.call("vm.stop", ControlTypes.VMReference(vm: "leased"), as: VMInfo.self)
        #expect(try lease()?.held == false)
        #expect(LeaseKeeper.state(runtimeDirectory: runtime) == "released")
        // A stop is a quit through QMP, not the keeper's death: QEMU exited by itself.
        #expect(LeaseKeeper.qemuExit(runtimeDirectory: runtime) == .exited(0), "\(String(describing: LeaseKeeper.qemuExit(runtimeDirectory: runtime)))")

        // The agent and the keeper killed together: the copy dies with them, so that it never
        // runs unleased while another host may take the VM over.
        _ = try await agent.control.call("vm.start", ControlTypes.VMReference(vm: "leased"), as: VMInfo.self)
        let last = try #require(try await details().info.pid)
        let lastKeeper = try #require(VMManager.leaseKeeperPid(spec.id, runtime: runtime))
        agent.kill()
        kill(lastKeeper, SIGKILL)
        #expect(try await eventually(10) { ProcessProbe.startTime(last) == nil }, "QEMU runs on without its keeper and agent")
    }

    /// The parent pid of `pid` (field 4 of /proc/<pid>/stat).
    func parent(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }
}
