import Foundation
import Hypervisor
import MeshWire
import MigrationService
import Testing

/// A destination starts QEMU with exactly the source's guest RAM (`memory_kib`), and with what
/// an older source ran when the prepare does not say (Protocol.md §6.1).
@Suite struct GuestRAMAdmissionTests {
    func prepare(_ id: String, vm: String, accelerator: String, memoryKiB: UInt64) throws -> Hostmesh_V1_AgentEnvelope.OneOf_Body {
        var prepare = Hostmesh_V1_MigrationPrepare()
        prepare.migrationID = id
        prepare.vmSpecJson = String(decoding: try JSONEncoder().encode(VMSpec(id: vm, name: vm, memoryMiB: 64,
                                                                            boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""))),
                                    as: UTF8.self)
        prepare.settingsJson = String(decoding: try JSONEncoder().encode(MigrationSettings()), as: UTF8.self)
        prepare.accelerator = accelerator
        prepare.epoch = 1
        prepare.memoryKib = memoryKiB
        return .migrationPrepare(prepare)
    }

    @Test func theDestinationTakesTheSourcesFigureOrWhatAnOlderSourceRan() async throws {
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        for (id, vm, accelerator, given) in [("m-1", "aligned", "tcg", UInt64(65536)), ("m-2", "padded", "tcg", 65544),
                                             ("m-3", "older-tcg", "tcg", 0), ("m-4", "older-kvm", "kvm", 0)] {
            _ = await coordinator.handle(try prepare(id, vm: vm, accelerator: accelerator, memoryKiB: given), from: "node-a")
        }
        #expect(await vms.incomingMemoryKiB == ["aligned": 65536, "padded": 65544, "older-tcg": 65544, "older-kvm": 65536])
    }

    @Test func aFigureTheSpecDoesNotExplainIsRefusedBeforeAnythingIsReserved() async throws {
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        for (id, figure) in [("m-5", UInt64.max), ("m-6", 65540), ("m-7", 1 << 40)] {
            let reply = await coordinator.handle(try prepare(id, vm: "odd", accelerator: "tcg", memoryKiB: figure), from: "node-a")
            guard case .migrationPrepared(let prepared)? = reply?.body else {
                Issue.record("no answer to the prepare")
                return
            }
            #expect(prepared.error.contains("allows only 65536 or 65544 KiB"), "\(prepared.error)")
        }
        #expect(await vms.reserved.isEmpty)
    }

    /// A spec no source could have run (here: RAM past `VMSpec.maxMemoryMiB`, whose KiB would
    /// overflow) is refused as malformed, before any figure is computed from it.
    @Test func aSpecNoSourceCouldRunIsRefused() async throws {
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        var prepare = Hostmesh_V1_MigrationPrepare()
        prepare.migrationID = "m-8"
        var spec = VMSpec(id: "huge", name: "huge", memoryMiB: 64, boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""))
        spec.memoryMiB = 1 << 60
        prepare.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        prepare.settingsJson = String(decoding: try JSONEncoder().encode(MigrationSettings()), as: UTF8.self)
        prepare.accelerator = "tcg"
        prepare.epoch = 1
        let reply = await coordinator.handle(.migrationPrepare(prepare), from: "node-a")
        guard case .migrationPrepared(let prepared)? = reply?.body else {
            Issue.record("no answer to the prepare")
            return
        }
        #expect(prepared.error.hasPrefix("malformed request"), "\(prepared.error)")
        #expect(await vms.reserved.isEmpty)
    }
}
