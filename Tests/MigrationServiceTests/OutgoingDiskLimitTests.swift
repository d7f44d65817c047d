import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshWire
import MigrationService
import Testing

/// The source's limit of outgoing migrations with local disks (issue 11, `max_outgoing_disk_migrations`):
/// past it a VM with a local disk queues (or `--no-queue` refuses it, naming the limit and the
/// fix), while a VM without local disks still gets a plain slot, also past a queued disk migration.
/// No QEMU: the fake registry holds a migration right after its slot was taken (in `beginOutgoing`),
/// and a migration that reaches `beginOutgoing` had its slot.
@Suite struct OutgoingDiskLimitTests {
    static func vm(_ name: String, localDisk: Bool) -> RegisteredVM {
        let disks = localDisk ? [VMSpec.Disk(path: "/nonexistent/\(name).raw", format: .raw, shared: false)] : []
        let spec = VMSpec(id: "vm-\(name)", name: name, memoryMiB: 64, disks: disks, boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""))
        return RegisteredVM(id: spec.id, name: name, epoch: 1, hold: nil, spec: spec)
    }

    /// Nothing listens on port 1: the checklist's question to the destination fails at once, which
    /// does not refuse a migration (the migration itself would).
    let nowhere = HostPort(host: "127.0.0.1", port: 1)

    func migrate(_ coordinator: MigrationCoordinator, _ name: String, queue: Bool) async -> String {
        do {
            _ = try await coordinator.migrate(name, to: nowhere, settings: MigrationSettings(), queue: queue) { _ in }
            return "completed"
        } catch { return "\(error)" }
    }

    @Test func migrationsWithLocalDisksPastTheLimitQueueAndTheOthersDoNotWait() async throws {
        let vms = FakeRegistry(known: [Self.vm("disk-a", localDisk: true), Self.vm("disk-b", localDisk: true), Self.vm("plain", localDisk: false)])
        var configuration = MigrationCoordinator.Configuration()
        configuration.limits = MigrationLimits(linkMegabits: nil, outgoing: 4, outgoingWithDisks: 1)
        let coordinator = MigrationCoordinator(journal: FakeJournal(), vms: vms, ports: nil, credentials: Fixtures.credentials("node-a"),
                                               configuration: configuration, logger: Logger(label: "test"))
        // disk-a takes the only disk slot and holds it.
        await vms.gateOutgoing("disk-a")
        let first = Task { await migrate(coordinator, "disk-a", queue: true) }
        var held = vms.outgoingHeld.makeAsyncIterator()
        #expect(await held.next() == "disk-a", "disk-a never reached its slot")

        // --no-queue: disk-b is refused at once, naming the limit and the fix; it never got a slot.
        let refused = await migrate(coordinator, "disk-b", queue: false)
        #expect(refused.contains("already runs 1 outgoing migrations with local disks (limit 1, max_outgoing_disk_migrations)"), "\(refused)")
        #expect(refused.contains("--no-queue") && refused.contains("raise max_outgoing_disk_migrations"), "\(refused)")
        #expect(await !vms.outgoingBegun.contains("disk-b"))

        // A VM without local disks is not held by the disk limit: it reaches the VM (and fails there, no QEMU).
        #expect(await migrate(coordinator, "plain", queue: false).contains("no QEMU in this test"))

        // Queued, disk-b waits for the disk slot...
        let second = Task { await migrate(coordinator, "disk-b", queue: true) }
        let deadline = ContinuousClock.now + .seconds(10)
        while await coordinator.queuedCount == 0 {
            guard ContinuousClock.now < deadline else { Issue.record("disk-b never queued"); return }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(await coordinator.queued().map(\.vm) == ["disk-b"])
        // ...and a migration without local disks asked after it does not wait behind it.
        #expect(await migrate(coordinator, "plain", queue: false).contains("no QEMU in this test"))
        #expect(await !vms.outgoingBegun.contains("disk-b"), "disk-b started while disk-a held the only disk slot")

        // disk-a ends: its slot goes to disk-b.
        await vms.releaseOutgoing("disk-a")
        #expect(await first.value.contains("no QEMU in this test"))
        #expect(await second.value.contains("no QEMU in this test"), "disk-b never got the freed disk slot")
        #expect(await vms.outgoingBegun == ["disk-a", "plain", "plain", "disk-b"])
        #expect(await coordinator.queuedCount == 0)
    }

    /// A reload that raises the limit starts a queued migration with local disks at once.
    @Test func aHigherLimitStartsAQueuedDiskMigration() async throws {
        let vms = FakeRegistry(known: [Self.vm("disk-a", localDisk: true), Self.vm("disk-b", localDisk: true)])
        var configuration = MigrationCoordinator.Configuration()
        configuration.limits = MigrationLimits(linkMegabits: nil, outgoingWithDisks: 1)
        let coordinator = MigrationCoordinator(journal: FakeJournal(), vms: vms, ports: nil, credentials: Fixtures.credentials("node-a"),
                                               configuration: configuration, logger: Logger(label: "test"))
        await vms.gateOutgoing("disk-a")
        let first = Task { await migrate(coordinator, "disk-a", queue: true) }
        var held = vms.outgoingHeld.makeAsyncIterator()
        #expect(await held.next() == "disk-a")
        let second = Task { await migrate(coordinator, "disk-b", queue: true) }
        let deadline = ContinuousClock.now + .seconds(10)
        while await coordinator.queuedCount == 0 {
            guard ContinuousClock.now < deadline else { Issue.record("disk-b never queued"); return }
            try await Task.sleep(for: .milliseconds(5))
        }
        await coordinator.setLimits(MigrationLimits(linkMegabits: nil, outgoingWithDisks: 2))
        #expect(await second.value.contains("no QEMU in this test"), "the raised limit did not start disk-b")
        #expect(await vms.outgoingBegun == ["disk-a", "disk-b"])
        await vms.releaseOutgoing("disk-a")
        #expect(await first.value.contains("no QEMU in this test"))
    }
}
