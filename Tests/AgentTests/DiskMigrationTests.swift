import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// A guest writing to a shared raw disk while it migrates: every write the disk acknowledged is on
/// the image afterwards, byte for byte, and the log goes on from the destination.
extension MigrationEndToEndTests {
    /// Waits until the VM's console on `agent` shows a disk record of `boot` above `n`.
    func diskRecord(_ agent: AgentProcess, _ vm: String, boot: String, above n: Int) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let last = DiskLog.records(try await console(agent, vm), boot: String(boot.prefix(8))).last, last > n { return last }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The console says why (a guest that crashed after a migration prints its panic there).
        let text = (try? await console(agent, vm)) ?? "(unreadable)"
        throw ControlError.failed("no disk record above \(n) from \(vm) on \(agent.hostID); console:\n\(text.suffix(4000))")
    }

    @Test func diskWritingGuestMigratesWithEveryAcknowledgedWriteIntact() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a"), b = try await mesh.start("node-b")
        let image = mesh.root + "/shared/disk.img"
        try FileManager.default.createDirectory(atPath: mesh.root + "/shared", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: image, contents: Data(count: 1 << 20))
        var vm = spec("writer", work: "heartbeat,disk")
        vm.disks = [VMSpec.Disk(path: image, format: .raw, shared: true)]
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, _) = try await heartbeat(a, "writer", after: 1)
        let before = try await diskRecord(a, "writer", boot: boot, above: 20)
        let blocks = try #require(DiskLog.lastRecord(try await console(a, "writer"))).blocks

        _ = try await migrate("writer", from: a, to: b)
        let after = try await diskRecord(b, "writer", boot: boot, above: before + 20)
        let (bootOnB, _) = try await heartbeat(b, "writer")
        #expect(bootOnB == boot)
        // Stop the guest so that nothing is in flight, then read the image.
        _ = try await b.control.call("vm.stop", ControlTypes.VMReference(vm: "writer"), as: VMInfo.self)
        let last = try await diskRecord(b, "writer", boot: boot, above: after - 1)
        let damaged = try DiskLog.damagedRecords(image: image, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(damaged.isEmpty, "acknowledged records missing or torn on the image: \(damaged.prefix(10))")
    }
}
