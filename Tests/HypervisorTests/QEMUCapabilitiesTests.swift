import Foundation
import Hypervisor
import Logging
import Testing

/// The pre-flight checklist's QEMU comparison (Protocol.md §6.9): the real probe, and the
/// decisions on capabilities a destination lacks.
struct QEMUCapabilitiesTests {
    static let here = QEMUCapabilities(version: "7.2.22", machines: [.init(name: "pc-q35-7.2", alias: "q35"), .init(name: "pc-q35-7.1")],
                                       cpuModels: [.init(name: "qemu64"), .init(name: "Skylake-Server", unavailableFeatures: ["avx512f", "pku"])])

    @Test(.enabled(if: ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"].contains { FileManager.default.isExecutableFile(atPath: $0) },
                   "QEMU is not installed (make deps)"))
    func theProbeReadsMachinesAndCPUModelsFromQMP() async throws {
        let capabilities = try await QEMUCapabilities.probe(binary: "qemu-system-x86_64", logger: Logger(label: "test"))
        #expect(capabilities.version.split(separator: ".").count == 3)
        let q35 = try #require(capabilities.resolve(machine: "q35"))
        #expect(q35.hasPrefix("pc-q35-"), "\(q35)")
        #expect(capabilities.machineRefusal(q35) == nil)
        #expect(capabilities.cpuRefusal("qemu64", sourceUnavailable: []) == nil)
    }

    /// A first QEMU that never answers (here: a stand-in that only sleeps) is given up after the
    /// first attempt, and a fresh, real one is asked with what is left of the budget.
    @Test(.enabled(if: ["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"].contains { FileManager.default.isExecutableFile(atPath: $0) },
                   "QEMU is not installed (make deps)"))
    func aProbeQEMUThatNeverAnswersIsReplacedByAFreshOne() async throws {
        let directory = NSTemporaryDirectory() + "qemucaps-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) } // a temporary directory: only disk space is left
        let qemu = try #require(["/usr/bin/qemu-system-x86_64", "/usr/local/bin/qemu-system-x86_64"].first { FileManager.default.isExecutableFile(atPath: $0) })
        // The first start hangs without ever listening; the next is the real QEMU.
        let script = directory + "/qemu"
        try "#!/bin/sh\nif mkdir \(directory)/started 2>/dev/null; then exec sleep 60; fi\nexec \(qemu) \"$@\"\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let started = ContinuousClock.now
        let capabilities = try await QEMUCapabilities.probe(binary: script, budget: .seconds(30), firstAttempt: .seconds(1), logger: Logger(label: "test"))
        #expect(capabilities.resolve(machine: "q35") != nil)
        #expect(FileManager.default.fileExists(atPath: directory + "/started"), "the first attempt never ran")
        print("QEMUCapabilitiesTests: the fresh QEMU answered \(ContinuousClock.now - started) after the first was started")
        // A stand-in that never answers, twice: refused within the budget, saying so.
        let never = directory + "/never"
        try "#!/bin/sh\nexec sleep 60\n".write(toFile: never, atomically: true, encoding: .utf8)
        chmod(never, 0o755)
        await #expect { _ = try await QEMUCapabilities.probe(binary: never, budget: .seconds(3), firstAttempt: .seconds(1), logger: Logger(label: "test")) }
            throws: { ($0 as? QEMUCapabilities.ProbeError)?.unanswered == true && "\($0)".contains("did not answer on its QMP socket")
                && "\($0)".contains("its threads then: sleep S") }
    }

    @Test func aMachineTypeOrCPUModelTheDestinationLacksIsRefusedWithAFix() throws {
        let machine = try #require(Self.here.machineRefusal("pc-q35-8.2"))
        #expect(machine.problem.contains("no machine type pc-q35-8.2"))
        #expect(machine.fix.contains("pc-q35-8.2"))
        // An alias is not a machine type: the same alias names another type in another QEMU.
        #expect(Self.here.machineRefusal("q35") != nil)
        #expect(Self.here.machineRefusal("pc-q35-7.1") == nil)
        let cpu = try #require(Self.here.cpuRefusal("EPYC-Milan", sourceUnavailable: []))
        #expect(cpu.problem.contains("no CPU model EPYC-Milan") && cpu.fix.contains("-cpu help"))
        // Features this host cannot give are refused only when the source gives them.
        let features = try #require(Self.here.cpuRefusal("Skylake-Server", sourceUnavailable: ["pku"]))
        #expect(features.problem.contains("avx512f") && !features.problem.contains("pku"))
        #expect(Self.here.cpuRefusal("Skylake-Server", sourceUnavailable: ["avx512f", "pku", "avx512bw"]) == nil)
    }
}
