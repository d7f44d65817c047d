import Foundation
import Hypervisor
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Process supervision with real QEMU but no guest OS: a paused VM with a blank disk.
@Suite("QEMU process supervision", .qemuInstalled, .timeLimit(.minutes(1)))
struct VMProcessTests {
    /// A paused-able VM that needs no kernel: firmware boot from a blank raw disk, plus a NIC
    /// on a dgram socket, so the generated argv is exercised against real QEMU.
    func blankSpec(in directory: String) throws -> VMSpec {
        let disk = directory + "/disk.raw"
        _ = FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20))
        return VMSpec(id: "blank-\(UUID().uuidString.prefix(6))", name: "blank", memoryMiB: 64,
                      disks: [.init(path: disk, format: .raw, shared: false)],
                      nics: [.init(id: "net0", mac: "52:54:00:12:34:56",
                                   attachment: .dgram(localPath: directory + "/n0.sock", remotePath: directory + "/sw.sock"))],
                      boot: .disk, accelerator: .tcg)
    }

    @Test func missingBinaryNamesItAndTheFix() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        var options = VMProcess.Options()
        options.binary = "/nonexistent/qemu-system-x86_64"
        do {
            _ = try await VMProcess.launch(spec: try blankSpec(in: directory), directory: .init(path: directory + "/vm"), options: options)
            Issue.record("expected qemuNotFound")
        } catch let error as HypervisorError {
            #expect(error == .qemuNotFound(binary: "/nonexistent/qemu-system-x86_64"))
            #expect(error.description.contains("/nonexistent/qemu-system-x86_64"))
            #expect(error.description.contains("apt-get install qemu-system-x86"))
        }
    }

    @Test func qemuExitingAtStartupReportsItsLog() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let spec = VMSpec(id: "nokernel", name: "nokernel", memoryMiB: 64,
                          boot: .kernel(path: directory + "/missing-vmlinuz", initrd: nil, commandLine: ""), accelerator: .tcg)
        do {
            _ = try await VMProcess.launch(spec: spec, directory: .init(path: directory + "/vm"), options: TestSupport.options)
            Issue.record("expected exitedDuringStartup")
        } catch let HypervisorError.exitedDuringStartup(vm, exit) {
            #expect(vm == "nokernel")
            #expect(exit.status == .exited(1))
            #expect(exit.logTail.joined().contains("missing-vmlinuz"))
        }
    }

    @Test func launchPausedThenKillIsATypedExit() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let vm = try await VMProcess.launch(spec: try blankSpec(in: directory), directory: .init(path: directory + "/vm"),
                                            mode: .boot(paused: true), options: TestSupport.options)
        defer { vm.kill() }
        #expect(try await vm.qmp.queryStatus() == VMRunStatus(running: false, status: .prelaunch))
        #expect(vm.record.accelerator.choice == .tcg)
        #expect(FileManager.default.fileExists(atPath: vm.directory.recordFile))

        kill(vm.pid, SIGKILL)
        let exit = try await vm.waitForExit()
        #expect(exit.status == .signaled(SIGKILL))
        await #expect(throws: QMPError.self) { try await vm.qmp.queryStatus() }
    }

    /// A disk whose image takes O_DIRECT opens with `cache.direct` (QEMU's cache=none): QEMU
    /// itself reports it, and the probe answers as the file system does.
    @Test func aDiskOnAFileSystemWithDirectIOBypassesThePageCache() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let spec = try blankSpec(in: directory)
        let supported = HostStorage.supportsDirectIO(path: spec.disks[0].path)
        let stat = Process()
        stat.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        stat.arguments = ["-f", "-c", "%T", directory]
        let output = Pipe()
        stat.standardOutput = output
        try stat.run()
        stat.waitUntilExit()
        let fileSystem = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if fileSystem.hasPrefix("ext2/ext3") || fileSystem.hasPrefix("xfs") { #expect(supported, "\(fileSystem) takes O_DIRECT") }
        #expect(!HostStorage.supportsDirectIO(path: directory + "/missing.raw"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["disk.raw"], "the probe leaves no file behind")
        let vm = try await VMProcess.launch(spec: spec, directory: .init(path: directory + "/vm"),
                                            mode: .boot(paused: true), options: TestSupport.options)
        defer { vm.kill() }
        let nodes = try await vm.qmp.execute("query-named-block-nodes")
        guard case let .array(list) = nodes, let file = list.first(where: { $0["node-name"]?.stringValue == "disk0-file" }) else {
            Issue.record("no disk0-file node in \(nodes)")
            return
        }
        #expect(file["cache"]?["direct"] == .bool(supported))
        #expect(vm.record.arguments.contains { $0.hasPrefix("driver=file,") && $0.hasSuffix(",cache.direct=on") } == supported)
    }

    @Test func aSecondLaunchInTheSameDirectoryIsRefused() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let spec = try blankSpec(in: directory)
        let runtime = VMRuntimeDirectory(path: directory + "/vm")
        let vm = try await VMProcess.launch(spec: spec, directory: runtime, mode: .boot(paused: true), options: TestSupport.options)
        defer { vm.kill() }
        await #expect(throws: HypervisorError.alreadyRunning(directory: runtime.path, pid: vm.pid)) {
            try await VMProcess.launch(spec: spec, directory: runtime, mode: .boot(paused: true), options: TestSupport.options)
        }
        await vm.stop()
    }

    @Test func aNewSupervisorAdoptsARunningQEMUAndDetectsStalePidFiles() async throws {
        let directory = TestSupport.temporaryDirectory()
        defer { TestSupport.remove(directory) }
        let runtime = VMRuntimeDirectory(path: directory + "/vm")
        let first = try await VMProcess.launch(spec: try blankSpec(in: directory), directory: runtime,
                                               mode: .boot(paused: true), options: TestSupport.options)
        defer { first.kill() }
        // The old supervisor goes away without touching QEMU (as when the agent restarts).
        await first.qmp.close()

        let adopted = try await VMProcess.adopt(directory: runtime)
        #expect(adopted.adopted)
        #expect(adopted.pid == first.pid)
        #expect(adopted.record.spec == first.record.spec)
        #expect(try await adopted.qmp.queryStatus().status == .prelaunch)
        #expect(await adopted.exitIfEnded() == nil)

        let exit = await adopted.stop()
        // This test process is QEMU's real parent, so even the adopting instance sees the status.
        #expect(exit.status == .exited(0))

        // QEMU removes its pid file on a clean exit.
        await #expect(throws: HypervisorError.notRunning(directory: runtime.path)) {
            try await VMProcess.adopt(directory: runtime)
        }
        // A pid file left by a QEMU killed with SIGKILL names a dead process...
        try "\(first.pid)\n".write(toFile: runtime.pidFile, atomically: true, encoding: .utf8)
        await #expect(throws: HypervisorError.stalePidFile(directory: runtime.path, pid: first.pid, reason: "is not running")) {
            try await VMProcess.adopt(directory: runtime)
        }
        // ...or, after pid reuse, someone else.
        try "\(getpid())\n".write(toFile: runtime.pidFile, atomically: true, encoding: .utf8)
        do {
            _ = try await VMProcess.adopt(directory: runtime)
            Issue.record("expected stalePidFile")
        } catch let HypervisorError.stalePidFile(_, pid, reason) {
            #expect(pid == getpid())
            #expect(reason.contains("not this VM's QEMU"))
        }
    }
}
