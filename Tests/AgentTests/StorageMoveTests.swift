@testable import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// `hostmesh vm move-storage` (Protocol.md §6.8) with a real agent and a real guest writing its
/// disk log (O_DIRECT|O_SYNC records, each announced once acknowledged) while its disk moves.
extension MigrationEndToEndTests {
    func moveStorage(_ agent: AgentProcess, _ vm: String, disk: String, to: String) async throws -> StorageMoveReport {
        try await agent.control.call("vm.move-storage", MoveStorageRequest(vm: vm, disk: disk, to: to), as: StorageMoveReport.self)
    }

    @Test func aWritingGuestsDiskMovesToAnotherDirectoryAndBackWithEveryAcknowledgedWrite() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let image = mesh.root + "/store-1/disk.raw"
        let other = mesh.root + "/store-2"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let (boot, first, blocks) = try await startDiskWriter("mover", on: a, image: image, mib: 32, above: 20)
        let (_, beat) = try await heartbeat(a, "mover")

        // To a directory: the file keeps its name; the old one goes.
        let moved = try await moveStorage(a, "mover", disk: "0", to: other)
        let there = other + "/disk.raw"
        #expect(moved.disk == 0 && moved.from == image && moved.to == there && moved.bytes >= 32 << 20 && moved.deletedOld, "\(moved)")
        #expect(try await diskPath(a, "mover") == there, "the VM's spec names the new file")
        #expect(FileManager.default.fileExists(atPath: there) && !FileManager.default.fileExists(atPath: image))
        let second = try await diskRecord(a, "mover", boot: boot, above: first + 20)
        let (sameBoot, later) = try await heartbeat(a, "mover", after: beat)
        #expect(sameBoot == boot && later > beat, "the guest rebooted or its heartbeat went back")

        // Back, by the disk's path, to a file name of our choosing.
        let back = mesh.root + "/store-1/renamed.raw"
        let returned = try await moveStorage(a, "mover", disk: there, to: back)
        #expect(returned.to == back && returned.deletedOld && !FileManager.default.fileExists(atPath: there))
        _ = try await diskRecord(a, "mover", boot: boot, above: second + 20)

        // Nothing in flight, then the final file holds every record the guest saw acknowledged,
        // whichever file it was written to.
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "mover"), as: VMInfo.self)
        let last = try #require(DiskLog.records(try await console(a, "mover"), boot: String(boot.prefix(8))).last)
        let damaged = try DiskLog.damagedRecords(image: back, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(last > second && damaged.isEmpty, "acknowledged records missing or torn on the final file (up to \(last)): \(damaged.prefix(10))")
        // The moved disk boots again from where the spec says.
        _ = try await a.control.call("vm.start", ControlTypes.VMReference(vm: "mover"), as: VMInfo.self)
        _ = try await heartbeat(a, "mover", after: 0)
        // A migration of the moved disk finds its renamed node (the mirror names the device's node now).
        let b = try await mesh.start("node-b")
        let report = try await migrate("mover", from: a, to: b)
        #expect(report.disks?.first?.path == back)
        _ = try await heartbeat(b, "mover", after: 0)
    }

    /// The agent is killed (SIGKILL; QEMU lives on) right after a move journaled `point`, then
    /// restarted: its recovery ends the move, and the file the spec names holds every record the
    /// guest saw acknowledged.
    @Test(arguments: ["storage:copying", "storage:pivoting", "storage:switched"])
    func anAgentKilledMidMoveEndsItOnAFileWithEveryAcknowledgedWrite(_ point: String) async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let environment = ["HOSTMESH_TEST_PAUSE_AT": "file"]
        var a = try await mesh.start("node-a", environment: environment)
        let image = mesh.root + "/store-1/disk.raw"
        let target = mesh.root + "/store-2/disk.raw"
        try FileManager.default.createDirectory(atPath: mesh.root + "/store-2", withIntermediateDirectories: true)
        let (boot, first, blocks) = try await startDiskWriter("mover", on: a, image: image, mib: 8, above: 10)

        try Data(point.utf8).write(to: URL(fileURLWithPath: a.stateDirectory + "/test-pause-at"))
        let control = a.control
        let move = Task { try await control.call("vm.move-storage", MoveStorageRequest(vm: "mover", disk: "0", to: target.replacingOccurrences(of: "/disk.raw", with: "")), as: StorageMoveReport.self) }
        let deadline = ContinuousClock.now + .seconds(30)
        while !FileManager.default.fileExists(atPath: a.stateDirectory + "/test-paused-at") {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("the move never reached \(point):\n\(a.log.suffix(3000))") }
            try await Task.sleep(for: .milliseconds(20))
        }
        let seen = DiskLog.records(try await console(a, "mover"), boot: String(boot.prefix(8))).last ?? first
        a.kill()
        _ = await move.result // the agent died under it
        for file in ["test-pause-at", "test-paused-at"] { try? FileManager.default.removeItem(atPath: a.stateDirectory + "/" + file) }
        a = try await mesh.restart(a, environment: environment)

        // Before `switched` the old file stays the disk; from `switched` on the target is.
        let finished = point == "storage:switched"
        let disk = try await diskPath(a, "mover")
        #expect(disk == (finished ? target : image), "\(point): the spec names \(disk)")
        #expect(FileManager.default.fileExists(atPath: image) != finished && FileManager.default.fileExists(atPath: target) == finished,
                "\(point): the other file should be gone")
        let info = try await a.control.call("vm.show", ControlTypes.VMReference(vm: "mover"), as: VMDetails.self).info
        #expect(info.state == "running" && info.problem == nil, "\(point): \(info.state) \(info.problem ?? "")")
        let later = try await diskRecord(a, "mover", boot: boot, above: seen + 10)
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "mover"), as: VMInfo.self)
        let last = max(later, DiskLog.records(try await console(a, "mover"), boot: String(boot.prefix(8))).last ?? 0)
        let damaged = try DiskLog.damagedRecords(image: disk, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(damaged.isEmpty, "\(point): acknowledged records missing or torn on \(disk) (up to \(last)): \(damaged.prefix(10))")
    }

    @Test func badStorageMovesAreRefusedBeforeAnythingIsCopied() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let image = mesh.root + "/store-1/disk.raw"
        try sparseImage(image, mib: 8)
        var vm = spec("stays", work: "heartbeat")
        vm.disks = [VMSpec.Disk(path: image, format: .raw, shared: false)]
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: false), as: VMInfo.self)
        let taken = mesh.root + "/store-1/taken.raw"
        try sparseImage(taken, mib: 1)

        func refusal(_ disk: String, _ to: String) async -> String {
            do {
                _ = try await moveStorage(a, "stays", disk: disk, to: to)
                return "accepted"
            } catch let error as ControlError { return error.message } catch { return "\(error)" }
        }
        #expect(await refusal("0", mesh.root + "/store-2").contains("not running here"))
        _ = try await a.control.call("vm.start", ControlTypes.VMReference(vm: "stays"), as: VMInfo.self)
        _ = try await heartbeat(a, "stays", after: 0)
        #expect(await refusal("1", mesh.root).contains("disk 1 does not exist"))
        #expect(await refusal("/nowhere/disk.raw", mesh.root).contains("has no disk at /nowhere/disk.raw"))
        #expect(await refusal("0", taken).contains("already exists"))
        #expect(await refusal("0", image).contains("the disk's own file"))
        #expect(await refusal("0", mesh.root + "/missing-dir/disk.raw").contains("is not a directory"))
        #expect(await refusal("0", "relative/disk.raw").contains("absolute path"))
        // Nothing was created, and the guest still runs on its file.
        #expect(try await diskPath(a, "stays") == image)
        #expect(!FileManager.default.fileExists(atPath: mesh.root + "/missing-dir"))
        let info = try await a.control.call("vm.show", ControlTypes.VMReference(vm: "stays"), as: VMDetails.self)
        #expect(info.info.state == "running")
    }
}

/// Recovery of a storage move left unfinished (Protocol.md §6.8): which file ends up the disk,
/// for every journaled phase and every state of QEMU.
@Suite struct StorageMoveRecoveryTests {
    @Test func beforeTheSwitchTheOldFileStaysTheDisk() {
        #expect(StorageMoveRecovery.decide(phase: .copying, qemu: .gone) == .rollBack(resume: false))
        #expect(StorageMoveRecovery.decide(phase: .copying, qemu: .readsOld) == .rollBack(resume: false))
        #expect(StorageMoveRecovery.decide(phase: .pivoting, qemu: .readsOld) == .rollBack(resume: true))
        // A dead QEMU never ran the guest on the target: the old file had every write to the pause.
        #expect(StorageMoveRecovery.decide(phase: .pivoting, qemu: .gone) == .rollBack(resume: false))
    }

    @Test func onceQEMUReadsTheTargetItIsTheDisk() {
        #expect(StorageMoveRecovery.decide(phase: .pivoting, qemu: .readsTarget) == .finish(resume: true))
        #expect(StorageMoveRecovery.decide(phase: .switched, qemu: .readsTarget) == .finish(resume: true))
        #expect(StorageMoveRecovery.decide(phase: .switched, qemu: .gone) == .finish(resume: false))
        #expect(StorageMoveRecovery.decide(phase: .copying, qemu: .readsTarget) == .finish(resume: false))
    }

    @Test func whatCannotBeKnownIsLeftToTheOperator() {
        for phase in [StorageMovePhase.copying, .pivoting, .switched] {
            guard case .undecided = StorageMoveRecovery.decide(phase: phase, qemu: .unknown) else {
                Issue.record("\(phase) with a silent QEMU was decided")
                continue
            }
        }
        guard case .undecided = StorageMoveRecovery.decide(phase: .switched, qemu: .readsOld) else {
            Issue.record("a journaled switch that QEMU contradicts was decided")
            return
        }
    }
}
