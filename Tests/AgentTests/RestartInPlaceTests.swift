import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Restart in place (issue 20 item 1, Protocol.md §9.1) with a real agent, real QEMU and the test
/// guest writing its disk log: a VM marked `restart = on-failure` whose QEMU is SIGKILLed comes
/// back on its owner from its disk at the next epoch, every write the dead copy saw acknowledged
/// is on the image, and past the limit the VM stays failed and says why.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct RestartInPlaceTests {
    @Test func aKilledQEMUIsRestartedOnItsOwnerUntilTheLimit() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let disk = mesh.root + "/disk.raw"
        try Data(count: 8 << 20).write(to: URL(fileURLWithPath: disk))
        let agent = try await mesh.start("node-a", arguments: ["--restart-limit", "2"])
        var spec = VMSpec(id: UUID().uuidString.lowercased(), name: "ha", memoryMiB: 128,
                          disks: [.init(path: disk, format: .raw, shared: true)],
                          boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
                          accelerator: .tcg, extraKernelArguments: ["hm.work=heartbeat,disk"])
        spec.restart = .onFailure
        _ = try await agent.control.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        let directory = agent.stateDirectory + "/vms/" + spec.id + "/"
        func console() -> String { (try? String(contentsOfFile: directory + "console.log", encoding: .utf8)) ?? "" }
        func info() async throws -> VMInfo { try await agent.control.call("vm.show", ControlTypes.VMReference(vm: "ha"), as: VMDetails.self).info }

        var epoch: Int64 = 1
        for round in 1...2 {
            // Let the guest write some records, then kill its only QEMU.
            var seen: (boot: String, n: Int, blocks: Int)?
            let deadline = ContinuousClock.now + .seconds(40)
            while ContinuousClock.now < deadline {
                if let last = DiskLog.lastRecord(console()), last.n >= 20 { seen = last; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let before = try #require(seen, "round \(round): the disk log never got going: \(console().suffix(800))")
            let victims = pids(ofProcessesMentioning: directory)
            #expect(victims.count == 1, "round \(round): one QEMU expected, found \(victims)")
            for pid in victims { kill(pid, SIGKILL) }
            // Everything the dead copy saw acknowledged (its console stops with it).
            let acknowledged = DiskLog.records(console(), boot: before.boot)

            // It comes back on its own, at the next epoch, with the restart and its reason shown.
            var restarted: VMInfo?
            let back = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < back {
                let now = try await info()
                if now.state == "running", let pid = now.pid, !victims.contains(pid) { restarted = now; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            let image = try [UInt8](Data(contentsOf: URL(fileURLWithPath: disk))) // before the new boot writes much
            let state = try await info()
            let vm = try #require(restarted, "round \(round): not restarted: \(state)\n\(agent.log.suffix(3000))")
            #expect(vm.epoch == epoch + 1, "round \(round): epoch \(String(describing: vm.epoch)), expected \(epoch + 1)")
            epoch = vm.epoch ?? epoch + 1
            #expect(vm.restarts?.count == round && vm.restarts?.lastReason == "QEMU was killed by signal 9", "\(String(describing: vm.restarts))")

            // Every acknowledged record of the dead boot is on the image, unless the new boot has
            // already written its own record of the same number there (it starts again at 1).
            let newBoot = try await nextBoot(after: before.boot, console: console)
            let last = try #require(acknowledged.last)
            let checked = Array(max(1, last - before.blocks + 1)...last)
            var intact = 0
            let damaged = checked.filter { n in
                let start = (n % before.blocks) * DiskLog.blockSize
                let block = Array(image[start..<start + DiskLog.blockSize])
                if block == DiskLog.record(n, boot: before.boot) { intact += 1; return false }
                return block != DiskLog.record(n, boot: newBoot)
            }
            #expect(checked.count >= 20 && damaged.isEmpty, "round \(round): \(checked.count) records checked, damaged: \(damaged.prefix(10))")
            #expect(intact > 0, "round \(round): the new boot overwrote every record before the image was read: nothing was checked")
            let ownership = try await agent.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
            #expect(ownership.contains(ControlTypes.Ownership(vm: spec.id, owner: "node-a", epoch: UInt64(epoch))), "\(ownership)")
        }

        // A third death within the window is past the limit (2): it stays down and says why.
        try await Task.sleep(for: .seconds(1))
        for pid in pids(ofProcessesMentioning: directory) { kill(pid, SIGKILL) }
        var failed: VMInfo?
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let now = try await info()
            if now.state == "failed" { failed = now; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let state = try await info()
        let down = try #require(failed, "never gave up: \(state)")
        #expect(down.problem?.hasPrefix("lost: no copy runs: QEMU was killed by signal 9; not restarted: 2 restarts within 10 min") == true, "\(down.problem ?? "")")
        #expect(down.epoch == epoch)
        try await Task.sleep(for: .seconds(3))
        #expect(pids(ofProcessesMentioning: directory).isEmpty, "a copy came back past the limit")
        #expect(try await info().state == "failed")

        // An operator's start begins afresh.
        let started = try await agent.control.call("vm.start", ControlTypes.VMReference(vm: "ha"), as: VMInfo.self)
        #expect(started.state == "running" && started.problem == nil)
    }

    /// The boot id the console shows after `boot` (the restarted guest's), waiting for it.
    func nextBoot(after boot: String, console: () -> String) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let boots = Set(console().split(whereSeparator: \.isNewline).compactMap { line -> String? in
                let parts = line.split(separator: " ")
                return parts.count >= 3 && parts[0] == "DISK" && parts[1] != "start" && Int(parts[2]) != nil ? String(parts[1]) : nil
            })
            if let other = boots.first(where: { $0 != boot }) { return other }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ControlError.failed("the restarted guest never wrote its disk log: \(console().suffix(800))")
    }
}
