import Foundation
import Hypervisor
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Paths and helpers shared by the Hypervisor tests.
enum TestSupport {
    /// The repository root (tests run from anywhere).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The test guest built by Deploy/guest/build-guest.sh, if it has been built.
    static let guest: (kernel: String, initrd: String)? = {
        let directory = ProcessInfo.processInfo.environment["HOSTMESH_GUEST_DIR"] ?? repositoryRoot + "/Deploy/out/guest"
        let kernel = directory + "/kernel", initrd = directory + "/initrd.img"
        guard FileManager.default.fileExists(atPath: kernel), FileManager.default.fileExists(atPath: initrd) else { return nil }
        return (kernel, initrd)
    }()

    /// True when qemu-system-x86_64 is installed.
    static let hasQEMU: Bool = (try? resolveQEMU()) != nil

    static func resolveQEMU() throws -> String {
        for directory in ["/usr/bin", "/usr/local/bin"] where access(directory + "/qemu-system-x86_64", X_OK) == 0 {
            return directory + "/qemu-system-x86_64"
        }
        throw HypervisorError.qemuNotFound(binary: "qemu-system-x86_64")
    }

    /// A fresh, short (unix socket paths are limited to 107 bytes) temporary directory.
    static func temporaryDirectory() -> String {
        var template = Array("/tmp/hmt-XXXXXX".utf8CString)
        let made = mkdtemp(&template)!
        return String(cString: made)
    }

    /// Removes a temporary directory.
    static func remove(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A test guest spec with the heartbeat workload, small and under TCG (fast and deterministic here).
    static func guestSpec(id: String = "vm-\(UUID().uuidString.prefix(8))", memoryMiB: Int = 192, work: String = "heartbeat") -> VMSpec? {
        guard let guest else { return nil }
        return VMSpec(id: id, name: "test \(id)", memoryMiB: memoryMiB,
                      boot: .kernel(path: guest.kernel, initrd: guest.initrd, commandLine: "console=ttyS0 quiet"),
                      accelerator: .tcg, extraKernelArguments: ["hm.work=\(work)"])
    }

    /// Options pointing at the installed QEMU.
    static var options: VMProcess.Options {
        var options = VMProcess.Options()
        options.binary = (try? resolveQEMU()) ?? "qemu-system-x86_64"
        return options
    }

    /// Heartbeat lines (`HB <bootid> <n>`) on a console so far.
    static func heartbeats(_ console: String) -> [(bootID: String, count: Int)] {
        console.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "HB", let count = Int(fields[2]) else { return nil }
            return (String(fields[1]), count)
        }
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
    static func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// Reaps a killed child so it does not linger as a zombie (test cleanup only: blocks briefly).
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        for _ in 0..<200 where waitpid(pid, &status, WNOHANG) == 0 { usleep(10_000) }
    }
}

extension Trait where Self == ConditionTrait {
    /// Skips the test when qemu-system-x86_64 is not installed.
    static var qemuInstalled: ConditionTrait {
        .enabled(if: TestSupport.hasQEMU, "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    }

    /// Skips the test when the test guest has not been built.
    static var guestBuilt: ConditionTrait {
        .enabled(if: TestSupport.hasQEMU && TestSupport.guest != nil, "needs QEMU and the test guest (Deploy/guest/build-guest.sh)")
    }
}
