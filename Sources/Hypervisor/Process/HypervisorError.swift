/// Failures of running QEMU, phrased for the person who has to act on them.
public enum HypervisorError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The QEMU binary does not exist (or is not on PATH).
    case qemuNotFound(binary: String)
    /// The QEMU binary exists but cannot be executed.
    case qemuNotExecutable(binary: String)
    /// The VM's runtime directory could not be created or used.
    case runtimeDirectory(path: String, reason: String)
    /// A unix socket path is longer than the kernel allows (107 bytes).
    case socketPathTooLong(path: String)
    /// posix_spawn failed.
    case spawnFailed(binary: String, reason: String)
    /// QEMU exited before its QMP socket answered (bad arguments, missing kernel, KVM abort...).
    case exitedDuringStartup(vm: String, exit: VMExit)
    /// QEMU kept running but its QMP socket did not answer in time; it was killed.
    case qmpNotReady(vm: String, after: Duration, logTail: [String])
    /// A QEMU already runs for this VM directory; adopt it instead of starting another.
    case alreadyRunning(directory: String, pid: Int32)
    /// Adoption found no QEMU to adopt: no pid file.
    case notRunning(directory: String)
    /// Adoption found a pid file whose process is gone or is not this VM's QEMU.
    case stalePidFile(directory: String, pid: Int32, reason: String)
    /// The spec asks for KVM and KVM cannot be used here.
    case kvmUnusable(reason: String)
    /// A migration source's guest RAM that this host's QEMU cannot run safely (`GuestRAM.refusal`).
    case guestRAMRefused(vm: String, reason: String)
    /// QEMU's version, which a TCG guest's RAM size depends on, could not be read (`QEMUVersion.ReadError`).
    case qemuVersionUnreadable(reason: String)

    public var description: String {
        switch self {
        case let .qemuNotFound(binary):
            return "QEMU binary \(binary) not found: install it with `apt-get install qemu-system-x86` (Debian/Ubuntu), or configure the full path of qemu-system-x86_64"
        case let .qemuNotExecutable(binary):
            return "QEMU binary \(binary) is not executable: check its permissions (chmod +x) or reinstall `qemu-system-x86`"
        case let .runtimeDirectory(path, reason):
            return "VM runtime directory \(path) is unusable: \(reason); check that its parent exists and is writable"
        case let .socketPathTooLong(path):
            return "unix socket path \(path) is \(path.utf8.count) bytes, over the 107-byte limit: use a shorter runtime directory"
        case let .spawnFailed(binary, reason):
            return "cannot start \(binary): \(reason)"
        case let .exitedDuringStartup(vm, exit):
            return "QEMU for VM \(vm) exited during startup (\(exit.status)); its log ends with:\n\(exit.logTail.joined(separator: "\n"))"
        case let .qmpNotReady(vm, after, tail):
            return "QEMU for VM \(vm) did not answer on QMP within \(after) and was killed; its log ends with:\n\(tail.joined(separator: "\n"))"
        case let .alreadyRunning(directory, pid):
            return "QEMU pid \(pid) already runs VM directory \(directory): adopt it (VMProcess.adopt) or stop it first"
        case let .notRunning(directory):
            return "no QEMU to adopt in \(directory): there is no pid file, so the VM is not running; start it instead"
        case let .stalePidFile(directory, pid, reason):
            return "stale pid file in \(directory): pid \(pid) \(reason); the VM is not running, start it again"
        case let .kvmUnusable(reason):
            return "KVM was requested but cannot be used: \(reason); set the accelerator to auto or tcg"
        case let .guestRAMRefused(vm, reason):
            return "cannot receive VM \(vm) here: \(reason)"
        case let .qemuVersionUnreadable(reason):
            return reason
        }
    }
}

/// How a QEMU process ended, with the end of its log for the diagnosis.
public struct VMExit: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The wait status.
    public enum Status: Sendable, Equatable, Codable, CustomStringConvertible {
        /// Exited with this code.
        case exited(Int32)
        /// Killed by this signal.
        case signaled(Int32)
        /// Not our child (an adopted QEMU): it is gone but its status went to its real parent.
        case unknown

        public var description: String {
            switch self {
            case let .exited(code): return "exit status \(code)"
            case let .signaled(signal): return "killed by signal \(signal)"
            case .unknown: return "exit status unknown (adopted process)"
            }
        }
    }

    /// How it ended.
    public var status: Status
    /// The last lines of QEMU's own output (`qemu.log` in the VM directory).
    public var logTail: [String]

    /// An exit record.
    public init(status: Status, logTail: [String]) {
        self.status = status
        self.logTail = logTail
    }

    public var description: String {
        logTail.isEmpty ? status.description : "\(status.description): \(logTail.joined(separator: " | "))"
    }
}
