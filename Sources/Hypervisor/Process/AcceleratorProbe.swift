import Foundation
public import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The accelerator chosen for a VM and why, in words an operator can act on.
public struct AcceleratorVerdict: Codable, Sendable, Equatable, CustomStringConvertible {
    /// The accelerator QEMU runs with.
    public var choice: AcceleratorChoice
    /// Why (e.g. "KVM guest printed nothing on its serial console within 3 s: stuck in early boot").
    public var reason: String

    /// A verdict.
    public init(choice: AcceleratorChoice, reason: String) {
        self.choice = choice
        self.reason = reason
    }

    public var description: String { "\(choice.rawValue) (\(reason))" }
}

/// Decides between KVM and TCG for `accelerator: auto`, with a bounded probe.
///
/// `/dev/kvm` existing and opening is not enough: on some hosts (nested virtualization on the
/// build machines) a KVM guest never gets past early boot while QEMU reports KVM enabled and
/// SeaBIOS runs fine. So the probe boots a real kernel under KVM for at most `budget` and
/// requires serial console output (a Linux kernel prints its banner within milliseconds of
/// starting). The probe QEMU is always killed; the verdict is cached for the life of the
/// process, and concurrent callers share one probe.
public actor AcceleratorProbe {
    /// A kernel to boot for the probe (the test guest's, or the VM's own).
    public struct ProbeGuest: Sendable, Hashable {
        /// Kernel image (bzImage or PVH vmlinux).
        public var kernel: String
        /// Optional initramfs.
        public var initrd: String?

        /// A probe guest.
        public init(kernel: String, initrd: String? = nil) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    /// Tunables of the probe.
    public struct Configuration: Sendable {
        /// How long the probe kernel may take to print anything under KVM.
        public var budget: Duration = .seconds(3)
        /// The KVM device.
        public var kvmDevice: String = "/dev/kvm"
        /// CPU model of the probe VM: the same as the VMs', since the failure may depend on it.
        public var cpuModel: String = "qemu64"
        /// Machine type of the probe VM.
        public var machine: String = "q35"
        /// What the probe kernel must print to count as progress: the kernel's first console line
        /// (the probe boots without `quiet`). Firmware output does not count: SeaBIOS runs fine
        /// under a KVM that cannot boot a kernel.
        public var progressMarker: String = "Linux version"

        /// The defaults.
        public init() {}
    }

    /// The process-wide probe (and cache).
    public static let shared = AcceleratorProbe()

    private struct Key: Hashable {
        let binary: String
        let verifiable: Bool
    }

    private let configuration: Configuration
    private let logger: Logger
    private var verdicts: [Key: Task<AcceleratorVerdict, Never>] = [:]

    /// A probe with its own cache (tests); the agent uses `shared`.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "hostmesh.hypervisor.accel")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The accelerator for a VM asking for `requested`, probing (once per process) for `auto`.
    ///
    /// - Parameters:
    ///   - binary: the resolved QEMU binary.
    ///   - guest: a kernel to probe with; without one, `auto` cannot verify KVM and picks TCG.
    /// - Throws: `HypervisorError.kvmUnusable` when `requested` is `kvm` and /dev/kvm cannot be opened.
    public func resolve(_ requested: VMSpec.Accelerator, binary: String, guest: ProbeGuest?) async throws(HypervisorError) -> AcceleratorVerdict {
        switch requested {
        case .tcg:
            return AcceleratorVerdict(choice: .tcg, reason: "the VM spec asks for TCG")
        case .kvm:
            if let problem = kvmDeviceProblem() { throw .kvmUnusable(reason: problem) }
            return AcceleratorVerdict(choice: .kvm, reason: "the VM spec asks for KVM")
        case .auto:
            let key = Key(binary: binary, verifiable: guest != nil)
            if let cached = verdicts[key] { return await cached.value }
            let task = Task { await self.probe(binary: binary, guest: guest) }
            verdicts[key] = task
            return await task.value
        }
    }

    /// Runs the probe now, uncached. Never takes much longer than `configuration.budget`.
    public func probe(binary: String, guest: ProbeGuest?) async -> AcceleratorVerdict {
        let verdict = await runProbe(binary: binary, guest: guest)
        logger.debug("accelerator probe", metadata: ["accel.choice": "\(verdict.choice.rawValue)", "accel.reason": "\(verdict.reason)"])
        return verdict
    }

    private func runProbe(binary: String, guest: ProbeGuest?) async -> AcceleratorVerdict {
        if let problem = kvmDeviceProblem() {
            return AcceleratorVerdict(choice: .tcg, reason: problem)
        }
        guard let guest else {
            return AcceleratorVerdict(choice: .tcg, reason: "no probe kernel configured, so KVM progress cannot be verified")
        }
        var template = Array("/tmp/hm-kvmprobe-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            return AcceleratorVerdict(choice: .tcg, reason: "cannot create a probe directory: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) } // best effort: a temp directory of logs
        let serial = directory + "/serial.log", output = directory + "/qemu.log"
        var arguments = [
            "-machine", configuration.machine, "-accel", "kvm", "-cpu", configuration.cpuModel, "-m", "128M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", "file:\(serial)", "-kernel", guest.kernel,
            "-append", "console=ttyS0 panic=-1",
        ]
        if let initrd = guest.initrd { arguments += ["-initrd", initrd] }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(executable: binary, arguments: arguments, output: .init(path: output))
        } catch {
            return AcceleratorVerdict(choice: .tcg, reason: "cannot start the KVM probe: \(error)")
        }
        let verdict = await watch(pid: pid, serial: serial, output: output)
        await ChildProcess.killAndReap(pid)
        return verdict
    }

    private func watch(pid: pid_t, serial: String, output: String) async -> AcceleratorVerdict {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.budget
        while clock.now < deadline {
            if let status = ChildProcess.reap(pid) {
                let tail = Self.tail(output)
                return AcceleratorVerdict(choice: .tcg, reason: "QEMU with KVM exited at once (\(status)): \(tail)")
            }
            if let data = FileManager.default.contents(atPath: serial),
               String(decoding: data, as: UTF8.self).contains(configuration.progressMarker) {
                return AcceleratorVerdict(choice: .kvm, reason: "a probe kernel booted under KVM (printed \"\(configuration.progressMarker)\" within \(configuration.budget))")
            }
            do {
                try await Task.sleep(for: .milliseconds(50))
            } catch {
                return AcceleratorVerdict(choice: .tcg, reason: "the KVM probe was cancelled")
            }
        }
        // TCG prints the banner in about 0.3 s here: a KVM slower than that is no gain anyway.
        return AcceleratorVerdict(choice: .tcg, reason: "a kernel under KVM did not print \"\(configuration.progressMarker)\" on its serial console within \(configuration.budget) (stuck in early boot: /dev/kvm opens but the guest makes no progress, e.g. broken nested virtualization)")
    }

    /// Why /dev/kvm cannot be used, or nil if it opens read-write.
    private func kvmDeviceProblem() -> String? {
        let fd = open(configuration.kvmDevice, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let error = errno
            switch error {
            case ENOENT: return "\(configuration.kvmDevice) does not exist (no hardware virtualization, or the kvm module is not loaded)"
            case EACCES, EPERM: return "\(configuration.kvmDevice) is not accessible to this user (add it to group kvm)"
            default: return "cannot open \(configuration.kvmDevice): \(String(cString: strerror(error)))"
            }
        }
        Glibc.close(fd)
        return nil
    }

    private static func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" // only decorates the verdict's reason
        return text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
    }
}
