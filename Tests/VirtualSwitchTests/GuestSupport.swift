import Foundation
import Hypervisor
import Testing
@testable import VirtualSwitch
#if canImport(Glibc)
import Glibc
#endif

/// Real test guests (Deploy/guest) on QEMU/TCG attached to switch ports.
enum Guests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static let files: (kernel: String, initrd: String)? = {
        let directory = ProcessInfo.processInfo.environment["HOSTMESH_GUEST_DIR"] ?? repositoryRoot + "/Deploy/out/guest"
        let kernel = directory + "/kernel", initrd = directory + "/initrd.img"
        guard FileManager.default.fileExists(atPath: kernel), FileManager.default.fileExists(atPath: initrd) else { return nil }
        return (kernel, initrd)
    }()

    static let qemu: String? = ["/usr/bin", "/usr/local/bin"].map { $0 + "/qemu-system-x86_64" }.first { access($0, X_OK) == 0 }

    static var available: Bool { files != nil && qemu != nil }

    /// A guest on a NIC whose switch side is `attachment`.
    static func spec(name: String, mac: MACAddress, ip: String, work: String, attachment: PortAttachment,
                     extra: [String] = []) -> VMSpec? {
        guard let files else { return nil }
        let nic = VMSpec.NIC(id: "eth0", mac: mac.description,
                             attachment: .dgram(localPath: attachment.vmSocketPath, remotePath: attachment.switchSocketPath))
        return VMSpec(id: name, name: name, memoryMiB: 128, nics: [nic],
                      boot: .kernel(path: files.kernel, initrd: files.initrd, commandLine: "console=ttyS0 quiet"),
                      accelerator: .tcg, extraKernelArguments: ["hm.ip=\(ip)/24", "hm.work=\(work)"] + extra)
    }

    static func launch(_ spec: VMSpec, in directory: String) async throws -> VMProcess {
        var options = VMProcess.Options()
        options.binary = qemu ?? "qemu-system-x86_64"
        options.accelerator = AcceleratorVerdict(choice: .tcg, reason: "tests run under TCG")
        return try await VMProcess.launch(spec: spec, directory: VMRuntimeDirectory(path: directory), options: options)
    }

    /// The last `PING <ip> sent= recv= …` line's received count.
    static func pingsReceived(_ console: String) -> Int {
        console.split(whereSeparator: \.isNewline).reversed().lazy.compactMap { line -> Int? in
            guard line.hasPrefix("PING "), let field = line.split(separator: " ").first(where: { $0.hasPrefix("recv=") }) else { return nil }
            return Int(field.dropFirst(5))
        }.first ?? 0
    }

    /// The last `TCP <ip>:<port> conn=k ok=n …` line: (k, n).
    static func tcpEchoes(_ console: String) -> (connections: Int, ok: Int)? {
        console.split(whereSeparator: \.isNewline).reversed().lazy.compactMap { line -> (Int, Int)? in
            guard line.hasPrefix("TCP ") else { return nil }
            let fields = line.split(separator: " ")
            guard let conn = fields.first(where: { $0.hasPrefix("conn=") }).flatMap({ Int($0.dropFirst(5)) }),
                  let ok = fields.first(where: { $0.hasPrefix("ok=") }).flatMap({ Int($0.dropFirst(3)) }) else { return nil }
            return (conn, ok)
        }.first
    }

    /// Mean `rtt_us` of the `PING` lines after the first `skip`.
    static func meanRTT(_ console: String, skip: Int = 0) -> Double? {
        let values = console.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PING ") }.dropFirst(skip).compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("rtt_us=") }.flatMap { Double($0.dropFirst(7)) }
        }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}

extension Trait where Self == ConditionTrait {
    /// Skips the test unless QEMU and the test guest are there.
    static var guestBuilt: ConditionTrait {
        .enabled(if: Guests.available, "needs qemu-system-x86_64 and the test guest (Deploy/guest/build-guest.sh)")
    }
}
