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

    @Test func anAbsurdFigureIsRefusedBeforeAnythingIsReserved() async throws {
        let vms = FakeRegistry()
        let coordinator = Fixtures.coordinator(journal: FakeJournal(), vms: vms)
        let reply = await coordinator.handle(try prepare("m-5", vm: "huge", accelerator: "tcg", memoryKiB: .max), from: "node-a")
        guard case .migrationPrepared(let prepared)? = reply?.body else {
            Issue.record("no answer to the prepare")
            return
        }
        #expect(prepared.error.contains("guest RAM of"), "\(prepared.error)")
        #expect(await vms.reserved.isEmpty)
    }
}
