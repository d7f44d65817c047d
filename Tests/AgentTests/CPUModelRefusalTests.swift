import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// The pre-flight checklist refuses a CPU model the destination lacks, end to end with one QEMU
/// version: the destination runs Debian's `qemu-system-i386` (the same QEMU build, 32-bit target),
/// whose `qemu64` lacks `lm` and `syscall`: a 64-bit guest could not resume there. The migration
/// is refused before the VM is touched, with the fix, and the guest keeps running on the source.
extension MigrationEndToEndTests {
    static let qemu32 = "/usr/bin/qemu-system-i386"

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: qemu32), "Debian's qemu-system-x86 package ships qemu-system-i386"))
    func theChecklistRefusesACPUModelTheDestinationLacks() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a")
        let c = try await mesh.start("node-c", arguments: ["--qemu", Self.qemu32])
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("long-mode"), start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(a, "long-mode", after: 1)

        let report = try await a.control.call("migrate.check", ControlTypes.Migrate(vm: "long-mode", to: .address(try HostPort(parsing: c.address)),
                                                                                    settings: MigrationSettings()), as: PreflightReport.self)
        let cpu = try #require(report.items.first { $0.name == "cpu-model" }, "\(report.lines)")
        #expect(!cpu.ok && cpu.detail.contains("qemu64") && cpu.detail.contains("lm"), "\(report.lines)")
        #expect(cpu.fix?.contains("CPU model") == true, "\(report.lines)")
        #expect(report.items.first { $0.name == "machine" }?.ok == true, "the machine type is there: \(report.lines)")

        await #expect {
            _ = try await migrate("long-mode", from: a, to: c)
        } throws: { error in
            "\(error)".contains("pre-flight") && "\(error)".contains("cpu-model")
        }
        // Nothing moved or was journaled; the guest runs on, the same boot.
        #expect(try await a.control.call("migrations", Empty(), as: [MigrationRecord].self).isEmpty)
        #expect(try await c.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let (stillBoot, after) = try await heartbeat(a, "long-mode", after: before)
        #expect(stillBoot == boot && after > before)
    }
}
