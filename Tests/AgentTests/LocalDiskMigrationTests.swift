import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Migrations of a VM whose disk is local to its host (Protocol.md §6.7): the disk is mirrored
/// through the agents' secure channel and completes at the memory's switchover pause.
extension MigrationEndToEndTests {
    /// A sparse raw image of `mib` MiB at `path`.
    func sparseImage(_ path: String, mib: Int) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(mib) << 20)
        try handle.close()
    }

    /// Starts a guest named `name` on `agent` writing its disk log to a new sparse raw image of
    /// `mib` MiB at `image` (a local disk); returns its boot, a record it acknowledged above
    /// `above`, and the log's size in blocks.
    func startDiskWriter(_ name: String, on agent: AgentProcess, image: String, mib: Int, above: Int) async throws -> (boot: String, record: Int, blocks: Int) {
        try sparseImage(image, mib: mib)
        var vm = spec(name, work: "heartbeat,disk")
        vm.disks = [VMSpec.Disk(path: image, format: .raw, shared: false)]
        _ = try await agent.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, _) = try await heartbeat(agent, name, after: 1)
        let record = try await diskRecord(agent, name, boot: boot, above: above)
        let blocks = try #require(DiskLog.lastRecord(try await console(agent, name))).blocks
        return (boot, record, blocks)
    }

    /// The path of the VM's first disk on `agent`.
    func diskPath(_ agent: AgentProcess, _ vm: String) async throws -> String {
        let details = try await agent.control.call("vm.show", ControlTypes.VMReference(vm: vm), as: VMDetails.self)
        return try #require(details.spec.disks.first).path
    }

    /// Every entry in an agent's storage directory for migrated images.
    func storedImages(_ agent: AgentProcess) -> [String] {
        let root = agent.stateDirectory + "/disks"
        return (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".raw") || $0.hasSuffix(".qcow2") }
    }

    @Test func aGuestWritingToALocalDiskMovesThereAndBackWithEveryAcknowledgedWrite() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        let image = mesh.root + "/a-local/disk.raw"
        let (boot, first, blocks) = try await startDiskWriter("mover", on: a, image: image, mib: 32, above: 20)

        // A → B: the source's image goes once B runs the guest on its own copy.
        let there = try await migrate("mover", from: a, to: b)
        let mirrored = try #require(there.disks?.first)
        #expect(mirrored.path == image && mirrored.virtualBytes == 32 << 20 && mirrored.copiedBytes > 0)
        let onB = try await diskPath(b, "mover")
        #expect(onB.hasPrefix(b.stateDirectory + "/disks/") && FileManager.default.fileExists(atPath: onB))
        #expect(!FileManager.default.fileExists(atPath: image), "the source's image should be deleted after the handover")
        let (_, beatOnB) = try await heartbeat(b, "mover")
        let second = try await diskRecord(b, "mover", boot: boot, above: first + 20)

        // B → A, keeping B's copy this time.
        let back = try await b.control.call("migrate", ControlTypes.Migrate(vm: "mover", to: .address(try HostPort(parsing: a.address)),
                                                                          settings: MigrationSettings(), keepSourceDisks: true),
                                            as: MigrationReport.self)
        #expect(back.disks?.count == 1)
        #expect(FileManager.default.fileExists(atPath: onB), "--keep-source-disks: B's image stays")
        let onA = try await diskPath(a, "mover")
        #expect(onA.hasPrefix(a.stateDirectory + "/disks/") && onA != image)
        let (bootOnA, beatOnA) = try await heartbeat(a, "mover", after: beatOnB)
        #expect(bootOnA == boot && beatOnA > beatOnB, "the heartbeat went back or the guest rebooted")
        _ = try await diskRecord(a, "mover", boot: boot, above: second + 20)

        // Nothing in flight, then the final image holds every acknowledged record.
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "mover"), as: VMInfo.self)
        let consoles = [try await console(a, "mover")]
        let last = try #require(consoles.compactMap { DiskLog.records($0, boot: String(boot.prefix(8))).last }.max())
        let damaged = try DiskLog.damagedRecords(image: onA, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(last > second && damaged.isEmpty, "acknowledged records missing or torn on the final image (up to \(last)): \(damaged.prefix(10))")
    }

    /// A guest that writes its disk faster than the (capped) background mirror copies: the
    /// mirror stops converging, switches to write-blocking, and the migration completes with
    /// every acknowledged record on the destination's image.
    @Test func aDiskTheGuestOutrunsSwitchesToWriteBlockingAndStillConverges() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        let image = mesh.root + "/a-local/disk.raw"
        let (boot, first, blocks) = try await startDiskWriter("writer", on: a, image: image, mib: 8, above: 30)
        // The guest writes ~200 KB/s of records; the background copy may move 32 KB/s.
        var settings = MigrationSettings()
        settings.diskMirrorBackgroundBytesPerSecond = 32 << 10
        settings.diskMirrorStallMs = 1000
        let report = try await migrate("writer", from: a, to: b, settings: settings)
        let disk = try #require(report.disks?.first)
        #expect(disk.mode == "write-blocking", "\(disk)")
        _ = try await diskRecord(b, "writer", boot: boot, above: first + 20)
        _ = try await b.control.call("vm.stop", ControlTypes.VMReference(vm: "writer"), as: VMInfo.self)
        let onB = try await diskPath(b, "writer")
        // The guest's records continue on B's console (the same boot); A's copy is gone.
        let last = try #require(DiskLog.records(try await console(b, "writer"), boot: String(boot.prefix(8))).last)
        let damaged = try DiskLog.damagedRecords(image: onB, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(damaged.isEmpty, "acknowledged records missing or torn on the destination's image (up to \(last)): \(damaged.prefix(10))")
    }

    @Test func aMigrationWithALocalDiskThatFailsLeavesNoPartialImage() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        // The source drops its control channel once it has started mirroring.
        let a = try await mesh.start("node-a", environment: ["HOSTMESH_TEST_CUT_AT": "source:mirroring"])
        let b = try await mesh.start("node-b")
        let image = mesh.root + "/a-local/disk.raw"
        let (boot, before, blocks) = try await startDiskWriter("stayer", on: a, image: image, mib: 32, above: 20)
        await #expect(throws: (any Error).self) { _ = try await migrate("stayer", from: a, to: b) }
        // The guest goes on here on its own image; B keeps nothing of it.
        let after = try await diskRecord(a, "stayer", boot: boot, above: before + 10)
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.state) == ["running"])
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let deadline = ContinuousClock.now + .seconds(10)
        while !storedImages(b).isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(storedImages(b).isEmpty, "partial images left on the destination: \(storedImages(b))")
        // It did create them (the failure came after admission), and said why they went (logged
        // just after the images went: waited for, bounded).
        _ = await b.logged("incoming migration discarded")
        let log = b.log
        #expect(log.contains("created the disk images to receive") && log.contains("incoming migration discarded"))
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "stayer"), as: VMInfo.self)
        let last = try #require(DiskLog.records(try await console(a, "stayer"), boot: String(boot.prefix(8))).last)
        let damaged = try DiskLog.damagedRecords(image: image, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(last >= after && damaged.isEmpty, "acknowledged records missing on the source's image: \(damaged.prefix(10))")
    }

    /// Either agent SIGKILLed while the mirrors run (the source paused once every mirror is
    /// synchronised: the jobs run, their NBD streams are open), then restarted.
    @Test func aSourceAgentKilledWhileTheMirrorsRunLeavesTheGuestAndItsDiskAtTheSource() async throws {
        try await killAgentWhileTheMirrorsRun("source")
    }

    @Test func aDestinationAgentKilledWhileTheMirrorsRunLeavesTheGuestAndItsDiskAtTheSource() async throws {
        try await killAgentWhileTheMirrorsRun("destination")
    }

    func killAgentWhileTheMirrorsRun(_ killed: String) async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        var a = try await mesh.start("node-a", environment: ["HOSTMESH_TEST_PAUSE_AT": "source:transferring"])
        var b = try await mesh.start("node-b")
        let image = mesh.root + "/a-local/disk.raw"
        let (boot, _, blocks) = try await startDiskWriter("survivor", on: a, image: image, mib: 32, above: 20)
        let (source, destination) = (a, b)
        let migration = Task { try await migrate("survivor", from: source, to: destination) }
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: a.stateDirectory + "/test-paused-at"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(storedImages(b).count == 1, "the destination should hold the image being mirrored")
        let (_, beatBefore) = try await heartbeat(a, "survivor")
        if killed == "source" {
            a.kill()
            _ = await migration.result
            a = try await mesh.restart(a)
        } else {
            b = try await mesh.restart(b) // killed, then started again on its state
            _ = FileManager.default.createFile(atPath: a.stateDirectory + "/test-continue", contents: Data())
            await #expect(throws: (any Error).self) { _ = try await migration.value }
        }
        // Recovery aborts: the guest goes on at the source, on its own image, never paused for good.
        let (bootAfter, beatAfter) = try await heartbeat(a, "survivor", after: beatBefore)
        #expect(bootAfter == boot && beatAfter > beatBefore)
        let settled = ContinuousClock.now + .seconds(20)
        func open(_ agent: AgentProcess) async throws -> [MigrationRecord] {
            try await agent.control.call("migrations", Empty(), as: [MigrationRecord].self).filter { $0.endedAt == nil }
        }
        var unfinished = try await open(a) + open(b)
        while ContinuousClock.now < settled, !unfinished.isEmpty || !storedImages(b).isEmpty {
            try await Task.sleep(for: .milliseconds(200))
            unfinished = try await open(a) + open(b)
        }
        #expect(unfinished.isEmpty, "unfinished migrations left: \(unfinished.map { "\($0.role) \($0.phase)" })")
        #expect(storedImages(b).isEmpty, "partial images left on the destination: \(storedImages(b))")
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let more = try await diskRecord(a, "survivor", boot: boot, above: (DiskLog.records(try await console(a, "survivor"), boot: String(boot.prefix(8))).last ?? 0) + 5)
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "survivor"), as: VMInfo.self)
        let last = try #require(DiskLog.records(try await console(a, "survivor"), boot: String(boot.prefix(8))).last)
        let damaged = try DiskLog.damagedRecords(image: image, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(last >= more && damaged.isEmpty, "acknowledged records missing on the source's image: \(damaged.prefix(10))")
        let log = (try? String(contentsOfFile: a.logPath, encoding: .utf8)) ?? ""
        #expect(log.contains("disk mirrors stopped; the source images stay the guest's"), "\(killed): the source never stopped its mirrors")
    }

    @Test func badDisksAreRefusedBeforeAnythingIsCopied() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        func refusal(_ name: String, _ disk: VMSpec.Disk, prepare: () throws -> Void = {}) async throws -> String {
            var vm = spec(name)
            vm.disks = [disk]
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
            try prepare()
            do {
                _ = try await migrate(name, from: a, to: b)
                return ""
            } catch {
                #expect(try await a.control.call("vm.show", ControlTypes.VMReference(vm: name), as: VMDetails.self).info.state == "running")
                return "\(error)"
            }
        }
        // The image vanished under the running VM.
        let gone = mesh.root + "/gone.raw"
        try sparseImage(gone, mib: 8)
        let missing = try await refusal("missing", VMSpec.Disk(path: gone, format: .raw, shared: false)) { try FileManager.default.removeItem(atPath: gone) }
        #expect(missing.contains("disk \(gone) does not exist"), "\(missing)")
        // A qcow2 image the spec calls raw.
        let mislabelled = mesh.root + "/mislabelled.img"
        #expect(try runTool("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", mislabelled, "8M"]).status == 0)
        let wrong = try await refusal("mislabelled", VMSpec.Disk(path: mislabelled, format: .raw, shared: false))
        #expect(wrong.contains("is qcow2 but the VM says raw"), "\(wrong)")
        // A thin 64 TiB image: the destination cannot reserve room for it, and says how much it has.
        let huge = mesh.root + "/huge.qcow2"
        #expect(try runTool("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", huge, "64T"]).status == 0)
        let room = try await refusal("huge", VMSpec.Disk(path: huge, format: .qcow2, shared: false))
        #expect(room.contains("not enough room for the VM's disks") && room.contains("MiB can be reserved"), "\(room)")
        // A disk another VM here also names.
        let sharedByTwo = mesh.root + "/two.raw"
        try sparseImage(sharedByTwo, mib: 8)
        var other = spec("other")
        other.disks = [VMSpec.Disk(path: sharedByTwo, format: .raw, shared: false)]
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: other, start: false), as: VMInfo.self)
        let inUse = try await refusal("user", VMSpec.Disk(path: sharedByTwo, format: .raw, shared: false))
        #expect(inUse.contains("is also a disk of VM other"), "\(inUse)")
        #expect(storedImages(b).isEmpty && FileManager.default.fileExists(atPath: huge))
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
    }
}
