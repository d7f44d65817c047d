import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Real agents (separate processes), real QEMU, the real test guest.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct MigrationEndToEndTests {
    func spec(_ name: String, work: String = "heartbeat", memory: Int = 128, extra: [String] = []) -> VMSpec {
        VMSpec(id: UUID().uuidString.lowercased(), name: name, memoryMiB: memory,
               boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
               accelerator: .tcg, extraKernelArguments: ["hm.work=\(work)"] + extra)
    }

    func console(_ agent: AgentProcess, _ vm: String) async throws -> String {
        try await agent.control.call("vm.console", ControlTypes.Console(vm: vm, lines: 10_000), as: ControlTypes.Text.self).text
    }

    /// Waits until the VM's console shows a heartbeat above `after`; returns the last one.
    func heartbeat(_ agent: AgentProcess, _ vm: String, after: Int = 0) async throws -> (String, Int) {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let last = heartbeats(try await console(agent, vm)).last, last.1 > after { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ControlError.failed("no heartbeat above \(after) from \(vm) on \(agent.hostID)")
    }

    func migrate(_ vm: String, from: AgentProcess, to: AgentProcess, settings: MigrationSettings = MigrationSettings()) async throws -> MigrationReport {
        try await from.control.call("migrate", ControlTypes.Migrate(vm: vm, to: .address(try HostPort(parsing: to.address)), settings: settings), as: MigrationReport.self)
    }

    @Test func heartbeatGuestMigratesThereAndBackWithoutRebooting() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("hb"), start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "hb", after: 2)

        let there = try await migrate("hb", from: a, to: b)
        #expect(there.streams >= 1 && there.transferredBytes > 0)
        let (bootOnB, onB) = try await heartbeat(b, "hb", after: before)
        #expect(bootOnB == boot) // same boot: the guest did not restart
        #expect(!(try await console(b, "hb")).contains("HOSTMESH-GUEST boot_id")) // it never booted on B
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty) // gone from A
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.state) == ["running"])

        _ = try await migrate("hb", from: b, to: a)
        let (bootBack, back) = try await heartbeat(a, "hb", after: onB)
        #expect(bootBack == boot && back > onB)
        let history = try await a.control.call("migrations", Empty(), as: [MigrationRecord].self)
        #expect(history.map(\.role) == ["destination", "source"] && history.allSatisfy { $0.error == nil })
    }

    @Test func dirtyingGuestConverges() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("dirty", work: "heartbeat,dirty:300", memory: 256), start: true),
                                     as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "dirty", after: 5)
        var settings = MigrationSettings()
        settings.maxBandwidthBytesPerSecond = 100_000_000 // slower than the guest dirties: pre-copy alone cannot converge
        settings.downtimeLimitMs = 50
        let report = try await migrate("dirty", from: a, to: b, settings: settings)
        #expect(!report.ladder.isEmpty) // a convergence measure was needed, and it worked
        let (bootOnB, _) = try await heartbeat(b, "dirty", after: before)
        #expect(bootOnB == boot)
    }

    @Test func postCopyHandsOverWhenItStarts() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("pc", work: "heartbeat,dirty:300", memory: 256, extra: ["hm.dirtyset=160"]), start: true),
                                     as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "pc", after: 5)
        var settings = MigrationSettings()
        settings.maxBandwidthBytesPerSecond = 40_000_000 // slower than the guest dirties
        settings.downtimeLimitMs = 20
        settings.postcopyAllowed = true
        settings.postcopyAfterPasses = 2
        let report = try await migrate("pc", from: a, to: b, settings: settings)
        #expect(report.postcopy == true)
        let (bootOnB, _) = try await heartbeat(b, "pc", after: before)
        #expect(bootOnB == boot)
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
    }

    @Test func destinationDyingMidMigrationLeavesTheGuestOnTheSource() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("victim", work: "heartbeat,dirty:100", memory: 256), start: true),
                                     as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "victim", after: 2)
        var settings = MigrationSettings()
        settings.maxBandwidthBytesPerSecond = 20_000_000 // seconds of transfer: time to kill the destination
        let migration = Task { try await migrate("victim", from: a, to: b, settings: settings) }
        // Wait for the destination QEMU to exist (not just its directory: under load it can start
        // much later), let the stream run a little, then kill it.
        let deadline = ContinuousClock.now + .seconds(30)
        while pids(ofProcessesMentioning: b.stateDirectory + "/vms/").isEmpty {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("no destination QEMU on node-b:\n\(b.log.suffix(3000))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(800))
        killProcesses(mentioning: b.stateDirectory + "/vms/")
        await #expect(throws: ControlError.self) { _ = try await migration.value }
        let (bootAfter, after) = try await heartbeat(a, "victim", after: before + 5)
        #expect(bootAfter == boot && after > before)
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.state) == ["running"])
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
    }

    @Test func autoChoosesADestinationFromGossipedCapacity() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b", arguments: ["--join", a.address])
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("auto"), start: true), as: VMInfo.self)
        _ = try await heartbeat(a, "auto", after: 1)
        // Wait until a knows b's capacity, then let it choose.
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline,
              try await a.control.call("members", Empty(), as: [MemberRow].self).first(where: { $0.host == "node-b" })?.cores ?? 0 == 0 {
            try await Task.sleep(for: .milliseconds(200))
        }
        _ = try await a.control.call("migrate", ControlTypes.Migrate(vm: "auto", to: .auto, settings: MigrationSettings()), as: MigrationReport.self)
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["auto"])
        // By host id, back.
        _ = try await b.control.call("migrate", ControlTypes.Migrate(vm: "auto", to: .host("node-a"), settings: MigrationSettings()), as: MigrationReport.self)
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["auto"])
    }

    @Test func missingQEMUIsAClearError() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--qemu", "/nonexistent/qemu-system-x86_64"])
        do {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("nope"), start: true), as: VMInfo.self)
            Issue.record("starting a VM without QEMU succeeded")
        } catch let error as ControlError {
            #expect(error.message.contains("/nonexistent/qemu-system-x86_64"))
            #expect(error.message.contains("apt-get install qemu-system-x86"))
        }
        #expect(a.isRunning) // the agent did not crash
    }
}
