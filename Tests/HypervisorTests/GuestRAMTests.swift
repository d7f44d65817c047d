import Foundation
import Hypervisor
import Testing

/// The guest's RAM size by accelerator and QEMU version, and what a destination refuses
/// (`GuestRAM`, Protocol.md §6.2).
@Suite("Guest RAM layout")
struct GuestRAMTests {
    let old = QEMUVersion(major: 7, minor: 2, micro: 22)
    let new = QEMUVersion(major: 10, minor: 0, micro: 2)

    @Test func versionsAreReadFromQEMUsOwnWords() {
        #expect(QEMUVersion(versionOutput: "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025") == new)
        #expect(QEMUVersion(versionOutput: "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)") == old)
        #expect(QEMUVersion(versionOutput: "QEMU emulator version 9.0") == QEMUVersion(major: 9, minor: 0))
        #expect(QEMUVersion(versionOutput: "qemu-system-x86_64: unknown option") == nil)
        #expect(QEMUVersion(versionOutput: "") == nil)
        #expect(old < GuestRAM.tcgFastPathFixedIn && GuestRAM.tcgFastPathFixedIn <= QEMUVersion(major: 9, minor: 0, micro: 0) && GuestRAM.tcgFastPathFixedIn < new)
    }

    @Test func onlyTCGOnAQEMUBeforeNinePadsTheRAM() {
        #expect(GuestRAM.kib(memoryMiB: 512, accelerator: .tcg, qemu: old) == 512 * 1024 + 8)
        #expect(GuestRAM.kib(memoryMiB: 512, accelerator: .tcg, qemu: new) == 512 * 1024)
        #expect(GuestRAM.kib(memoryMiB: 512, accelerator: .kvm, qemu: old) == 512 * 1024)
        #expect(GuestRAM.legacyKiB(memoryMiB: 512, accelerator: .tcg) == 512 * 1024 + 8)
        #expect(GuestRAM.legacyKiB(memoryMiB: 512, accelerator: .kvm) == 512 * 1024)
        #expect(QEMUCommandLine.memoryArgument(kib: 512 * 1024) == "512M")
        #expect(QEMUCommandLine.memoryArgument(kib: 512 * 1024 + 8) == "524296k")
    }

    /// An adopted QEMU whose record predates `memoryKiB` says its RAM in its own argv.
    @Test func theRAMIsReadFromQEMUsCommandLine() {
        #expect(GuestRAM.kib(inArguments: ["-smp", "1", "-m", "512M", "-nodefaults"]) == 524288)
        #expect(GuestRAM.kib(inArguments: ["-m", "524296k"]) == 524296)
        #expect(GuestRAM.kib(inArguments: ["-m", "2G"]) == 2 << 20)
        #expect(GuestRAM.kib(inArguments: ["-m", "256"]) == 262144) // QEMU's default unit: MiB
        #expect(GuestRAM.kib(inArguments: ["-m", "size=128M,slots=2"]) == 131072)
        #expect(GuestRAM.kib(inArguments: ["-m"]) == nil)
        #expect(GuestRAM.kib(inArguments: ["-m", "lots"]) == nil)
        #expect(GuestRAM.kib(inArguments: ["-smp", "1"]) == nil)
        #expect(GuestRAM.explains(kib: 65544, memoryMiB: 64) && GuestRAM.explains(kib: 65536, memoryMiB: 64))
        #expect(!GuestRAM.explains(kib: 65540, memoryMiB: 64))
    }

    @Test func aDestinationTakesTheSourcesRAMOnlyWhenItCanRunItSafely() throws {
        // A new QEMU runs an old source's padded guest, and its own aligned one.
        #expect(GuestRAM.refusal(kib: 512 * 1024 + 8, memoryMiB: 512, accelerator: .tcg, qemu: new) == nil)
        #expect(GuestRAM.refusal(kib: 512 * 1024, memoryMiB: 512, accelerator: .tcg, qemu: new) == nil)
        // An old QEMU runs a padded guest, but not an aligned one under TCG: it would lose writes moving it on.
        #expect(GuestRAM.refusal(kib: 512 * 1024 + 8, memoryMiB: 512, accelerator: .tcg, qemu: old) == nil)
        let unsafe = try #require(GuestRAM.refusal(kib: 512 * 1024, memoryMiB: 512, accelerator: .tcg, qemu: old))
        #expect(unsafe.contains("QEMU 7.2.22") && unsafe.contains("9.0.0 or later"))
        #expect(GuestRAM.refusal(kib: 512 * 1024, memoryMiB: 512, accelerator: .kvm, qemu: old) == nil)
        // A figure the spec does not explain.
        let odd = try #require(GuestRAM.refusal(kib: 300 * 1024, memoryMiB: 512, accelerator: .tcg, qemu: new))
        #expect(odd.contains("307200 KiB") && odd.contains("512 MiB"))
    }

    /// The installed QEMU's version, read as the agent reads it before starting a guest.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64")))
    func theInstalledQEMUsVersionIsRead() async throws {
        let version = try await QEMUVersion.of(binary: "/usr/bin/qemu-system-x86_64")
        #expect(version.major >= 7)
        #expect(try await QEMUVersion.of(binary: "/usr/bin/qemu-system-x86_64") == version)
        await #expect(throws: QEMUVersion.ReadError.self) { try await QEMUVersion.of(binary: "/nonexistent/qemu") }
    }

    /// A destination's QEMU never starts with a figure it must refuse.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64")))
    func aFigureTheSpecDoesNotExplainIsRefusedBeforeQEMUStarts() async throws {
        let root = NSTemporaryDirectory() + "hm-guestram-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: root) } // a temporary directory
        let spec = VMSpec(id: "vm-ram", name: "ram", memoryMiB: 64, boot: .kernel(path: "/nonexistent/vmlinuz", initrd: nil, commandLine: ""),
                          accelerator: .tcg)
        var options = VMProcess.Options()
        options.accelerator = AcceleratorVerdict(choice: .tcg, reason: "the source's")
        options.memoryKiB = 300 * 1024
        do {
            _ = try await VMProcess.launch(spec: spec, directory: .init(path: root + "/vm"), mode: .incoming, options: options)
            Issue.record("QEMU started with RAM its spec does not explain")
        } catch let error as HypervisorError {
            guard case .guestRAMRefused(let vm, let reason) = error else { Issue.record("unexpected: \(error)"); return }
            #expect(vm == "ram" && reason.contains("307200 KiB"), "\(error)")
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/vm/qemu.pid"))
    }
}
