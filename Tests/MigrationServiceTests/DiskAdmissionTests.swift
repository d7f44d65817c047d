import ControlAPI
import Foundation
import Hypervisor
import MeshWire
import Logging
import MigrationService
import Testing

/// A prepare with local disks (Protocol.md §6.7): the descriptions must match the spec, and the
/// destination must have room for the images, before anything is reserved or created.
@Suite struct DiskAdmissionTests {
    func prepare(_ id: String, disks: [VMSpec.Disk], described: [Hostmesh_V1_DiskImage]) throws -> Hostmesh_V1_AgentEnvelope.OneOf_Body {
        var prepare = Hostmesh_V1_MigrationPrepare()
        prepare.migrationID = id
        let spec = VMSpec(id: "vm-1", name: "web", memoryMiB: 64, disks: disks, boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""))
        prepare.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        prepare.settingsJson = String(decoding: try JSONEncoder().encode(MigrationSettings()), as: UTF8.self)
        prepare.accelerator = "tcg"
        prepare.epoch = 1
        prepare.disks = described
        return .migrationPrepare(prepare)
    }

    func image(_ index: UInt32, _ format: String, size: UInt64, thin: Bool = false) -> Hostmesh_V1_DiskImage {
        var image = Hostmesh_V1_DiskImage()
        image.index = index
        image.format = format
        image.virtualSize = size
        image.thin = thin
        image.allocatedBytes = thin ? 1 << 20 : size
        return image
    }

    func answer(_ body: Hostmesh_V1_AgentEnvelope.OneOf_Body, vms: FakeRegistry) async -> String {
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        guard case .migrationPrepared(let prepared)? = await coordinator.handle(body, from: "node-a")?.body else { return "no answer" }
        return prepared.error
    }

    @Test func descriptionsMustNameExactlyTheLocalDisks() async throws {
        let local = VMSpec.Disk(path: "/a/disk.raw", format: .raw, shared: false)
        let shared = VMSpec.Disk(path: "/shared/data.qcow2", format: .qcow2, shared: true)
        let vms = FakeRegistry()
        let cases: [(VMSpec.Disk, [Hostmesh_V1_DiskImage], String)] = [
            (local, [], "do not match the VM's local disks"),                                   // a local disk left out
            (shared, [image(0, "qcow2", size: 1 << 20)], "do not match the VM's local disks"),  // a shared one described
            (local, [image(0, "qcow2", size: 1 << 20)], "described as qcow2, the spec says raw"),
            (local, [image(0, "raw", size: 0)], "disk 0 has no size"),
        ]
        for (disk, described, expected) in cases {
            let error = await answer(try prepare("m-\(expected.count)", disks: [disk], described: described), vms: vms)
            #expect(error.contains("malformed request") && error.contains(expected), "\(error)")
        }
        #expect(await vms.reserved.isEmpty, "a VM id was reserved for a malformed prepare")
    }

    @Test func aDestinationWithoutRoomRefusesWithTheFigures() async throws {
        let local = VMSpec.Disk(path: "/a/disk.qcow2", format: .qcow2, shared: false)
        let vms = FakeRegistry()
        // 64 TiB, not thin: no build machine has that much room.
        let error = await answer(try prepare("m-big", disks: [local], described: [image(0, "qcow2", size: 64 << 40)]), vms: vms)
        #expect(error.contains("not enough room for the VM's disks in /nonexistent/disks: they need 67108864 MiB"), "\(error)")
        #expect(error.contains("MiB can be reserved"))
        #expect(await vms.reserved.isEmpty)
    }

    /// Two admissions at once that each fit the free room but not together: the first holds its
    /// reservation while it is still being admitted (here: held in the registry), so the second
    /// is refused with both figures instead of taking the same room.
    @Test func concurrentAdmissionsCannotBothTakeTheSameRoom() async throws {
        let free = try #require(HostStorage.availableBytes(at: "/nonexistent/disks"))
        let each = free / 10 * 6 // 60% each: one fits, two do not
        let vms = FakeRegistry()
        await vms.closeGate()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        func ask(_ id: String) async throws -> String {
            var body = try prepare(id, disks: [VMSpec.Disk(path: "/a/\(id).raw", format: .raw, shared: false)],
                                   described: [image(0, "raw", size: each)])
            if case .migrationPrepare(var p) = body {
                // Two VMs: the same id would be refused as already arriving.
                var spec = try JSONDecoder().decode(VMSpec.self, from: Data(p.vmSpecJson.utf8))
                spec.id = "vm-\(id)"
                p.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
                body = .migrationPrepare(p)
            }
            guard case .migrationPrepared(let prepared)? = await coordinator.handle(body, from: "node-a")?.body else { return "no answer" }
            return prepared.error
        }
        let first = Task { try await ask("m-first") }
        var held = vms.held.makeAsyncIterator()
        #expect(await held.next() == "vm-m-first", "the first admission never reached its reservation")
        // The first is admitted as far as its room goes, and waits: the second must not see that room.
        let second = try await ask("m-second")
        #expect(second.contains("not enough room for the VM's disks") && second.contains("MiB can be reserved"), "\(second)")
        let needMiB = (each + (1 << 20) - 1) >> 20, leftMiB = (free - each) >> 20
        #expect(second.contains("they need \(needMiB) MiB"), "\(second)")
        // What it says can be reserved is what the first left, not the whole free room (±5% for other writers).
        let said = second.split(separator: ",").last.flatMap { part in part.split(separator: " ").compactMap { UInt64($0) }.first }
        #expect(said.map { Double($0) < Double(leftMiB) * 1.05 + 64 } == true, "\(second) (left after the first: \(leftMiB) MiB)")
        await vms.openGate()
        let firstAnswer = try await first.value
        #expect(!firstAnswer.contains("not enough room"), "the first admission lost its room: \(firstAnswer)")
        #expect(await vms.reserved == ["vm-m-first"], "the second VM was reserved")
    }

    @Test func migrationsWithDisksHaveALimitOfTheirOwn() async throws {
        var configuration = MigrationCoordinator.Configuration()
        configuration.limits.incomingWithDisks = 0
        let vms = FakeRegistry()
        let coordinator = MigrationCoordinator(journal: FakeJournal(), vms: vms, ports: nil, credentials: Fixtures.credentials("node-b"),
                                               configuration: configuration, logger: Logger(label: "test"))
        let local = VMSpec.Disk(path: "/a/disk.raw", format: .raw, shared: false)
        guard case .migrationPrepared(let prepared)? = await coordinator.handle(
            try prepare("m-limit", disks: [local], described: [image(0, "raw", size: 1 << 20, thin: true)]), from: "node-a")?.body else {
            Issue.record("no answer to the prepare")
            return
        }
        #expect(prepared.error.contains("already receives 0 migrations with local disks (limit 0)"), "\(prepared.error)")
        #expect(await vms.reserved.isEmpty)
    }
}
