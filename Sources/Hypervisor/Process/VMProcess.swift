import Foundation
public import Logging
#if canImport(Glibc)
import Glibc
#endif

/// One running QEMU: started here (`launch`) or found running after an agent restart (`adopt`).
///
/// Owns the QMP connection and watches the process. Nothing blocks: exit is observed by
/// polling `waitpid(WNOHANG)` (or /proc for an adopted QEMU, which is not our child).
public actor VMProcess {
    /// How to launch or adopt.
    public struct Options: Sendable {
        /// The QEMU binary: a path, or a name searched on PATH.
        public var binary: String = "qemu-system-x86_64"
        /// How long QEMU may take to answer on QMP after it was started.
        public var startupTimeout: Duration = .seconds(10)
        /// QMP connection settings.
        public var qmp = QMPClient.Configuration()
        /// Force an accelerator verdict instead of resolving `spec.accelerator` (e.g. a
        /// migration destination that must match its source).
        public var accelerator: AcceleratorVerdict?
        /// Force the guest's RAM, in KiB, instead of this QEMU's layout for the spec's memory
        /// (`GuestRAM`): a migration destination gives the guest exactly its source's.
        public var memoryKiB: Int?
        /// Kernel for the KVM probe when the VM itself boots from disk.
        public var probeGuest: AcceleratorProbe.ProbeGuest?
        /// The probe (and verdict cache) to use.
        public var probe: AcceleratorProbe = .shared
        /// Starts QEMU instead of this process (nil: spawned here, as this process's child).
        /// Given the executable, its arguments and the log file for its output, it returns the
        /// pid of the QEMU it made start. Used to make QEMU the child of a VM's lease keeper
        /// (Protocol.md §9.2), so that QEMU never runs without it. A QEMU started so is not
        /// this process's child: its exit is seen through /proc, status unknown.
        public var spawner: (@Sendable (_ executable: String, _ arguments: [String], _ output: String) async throws -> Int32)?

        /// The defaults.
        public init() {}
    }

    /// What the agent persists (also in `runtime.json`).
    public nonisolated let record: VMRuntimeRecord
    /// The QMP connection to this QEMU.
    public nonisolated let qmp: QMPClient
    /// True when this QEMU was found running rather than started by this instance.
    public nonisolated let adopted: Bool
    /// Identifies the process across pid reuse (start time in /proc/<pid>/stat).
    private nonisolated let startTime: UInt64?
    private let logger: Logger
    private var exit: VMExit?

    /// QEMU's pid.
    public nonisolated var pid: Int32 { record.pid }
    /// The VM's runtime directory.
    public nonisolated var directory: VMRuntimeDirectory { record.directory }

    private init(record: VMRuntimeRecord, qmp: QMPClient, adopted: Bool, startTime: UInt64?, logger: Logger) {
        self.record = record
        self.qmp = qmp
        self.adopted = adopted
        self.startTime = startTime
        self.logger = logger
    }

    /// Starts QEMU for `spec` in `directory` and returns once QMP answers.
    ///
    /// - Throws: `VMSpecError` (invalid spec), `HypervisorError` (binary missing, directory
    ///   unusable, already running, QEMU exited or did not answer), `QMPError`.
    public static func launch(spec: VMSpec, directory: VMRuntimeDirectory, mode: QEMUCommandLine.Mode = .boot(paused: false),
                              options: Options = Options(), logger: Logger = Logger(label: "hostmesh.hypervisor.vm")) async throws -> VMProcess {
        var logger = logger
        logger[metadataKey: "vm.id"] = "\(spec.id)"
        try spec.validate()
        let binary = try ChildProcess.resolve(binary: options.binary)
        try directory.prepare()
        if let pid = directory.readPid(), let argv = ChildProcess.commandLine(pid),
           argv.contains(QEMUCommandLine.qmpArgument(directory)) {
            throw HypervisorError.alreadyRunning(directory: directory.path, pid: pid)
        }
        for stale in [directory.pidFile, directory.qmpSocket, directory.incomingSocket] {
            unlink(stale)
        }

        let verdict: AcceleratorVerdict
        if let forced = options.accelerator {
            verdict = forced
        } else {
            var guest = options.probeGuest
            if case let .kernel(kernel, initrd, _) = spec.boot { guest = .init(kernel: kernel, initrd: initrd) }
            verdict = try await options.probe.resolve(spec.accelerator, binary: binary, guest: guest)
        }
        let memoryKiB = try await guestRAM(spec, accelerator: verdict.choice, binary: binary, forced: options.memoryKiB)
        let arguments = try QEMUCommandLine.arguments(for: spec, in: directory, accelerator: verdict.choice,
                                                      memoryKiB: memoryKiB, mode: mode, directIO: Self.directIODisks(spec))
        let pid: pid_t
        if let spawner = options.spawner {
            pid = try await spawner(binary, arguments, directory.qemuLog)
        } else {
            pid = try ChildProcess.spawn(executable: binary, arguments: arguments, output: .init(path: directory.qemuLog))
        }
        let startTime = ChildProcess.startTime(pid)
        let record = VMRuntimeRecord(spec: spec, directory: directory, pid: pid, binary: binary, accelerator: verdict,
                                     mode: mode == .boot(paused: false) || mode == .boot(paused: true) ? .boot : .incoming, startedAt: Date(),
                                     arguments: [binary] + arguments, memoryKiB: memoryKiB)
        logger.debug("qemu started", metadata: ["vm.pid": "\(pid)", "vm.accel": "\(verdict)", "vm.dir": "\(directory.path)"])
        do {
            try Self.write(record)
            let qmp = try await Self.waitForQMP(pid: pid, spec: spec, directory: directory, options: options, logger: logger)
            return VMProcess(record: record, qmp: qmp, adopted: false, startTime: startTime, logger: logger)
        } catch {
            await ChildProcess.killAndReap(pid)
            throw error
        }
    }

    /// The disks whose image takes O_DIRECT. They bypass the host's page cache, as libvirt's
    /// `cache=none`, Proxmox's and Nova's defaults do: a disk mirrored into this host otherwise
    /// fills the page cache, and its writeback then stalls the guest's synchronous writes and the
    /// mirror itself (`bench storage`: a 1 GiB disk's copy 2-3x slower, the guest's write p99 5-9x
    /// its quiet figure; README). The guest sees the same flush semantics either way.
    static func directIODisks(_ spec: VMSpec) -> Set<Int> {
        Set(spec.disks.indices.filter { HostStorage.supportsDirectIO(path: spec.disks[$0].path) })
    }

    /// The guest's RAM in KiB: `forced` (a migration source's figure) if this QEMU can run it
    /// safely, else this QEMU's own layout. Only TCG depends on QEMU's version (`GuestRAM`).
    private static func guestRAM(_ spec: VMSpec, accelerator: AcceleratorChoice, binary: String, forced: Int?) async throws(HypervisorError) -> Int {
        var version: QEMUVersion?
        if accelerator == .tcg {
            do { version = try await QEMUVersion.of(binary: binary) } catch { throw .qemuVersionUnreadable(reason: error.description) }
        }
        let own = version.map { GuestRAM.kib(memoryMiB: spec.memoryMiB, accelerator: accelerator, qemu: $0) } ?? spec.memoryMiB * 1024
        guard let forced else { return own }
        if let version, let refusal = GuestRAM.refusal(kib: forced, memoryMiB: spec.memoryMiB, accelerator: accelerator, qemu: version) {
            throw .guestRAMRefused(vm: spec.name, reason: refusal)
        }
        if version == nil && forced != own {
            throw .guestRAMRefused(vm: spec.name, reason: "under KVM the guest's RAM is its spec's \(spec.memoryMiB) MiB, "
                + "but the source gives it \(forced) KiB; restart the VM on its source so that it runs with the spec's memory, then migrate it")
        }
        return forced
    }

    /// Finds the QEMU still running for `directory` (after an agent restart) and connects to it
    /// without disturbing the guest. Verifies the pid file's process really is this VM's QEMU
    /// (its argv carries this directory's `-qmp` socket and it is not a zombie).
    ///
    /// - Throws: `HypervisorError.notRunning` (no pid file), `.stalePidFile` (process gone or
    ///   reused), `.runtimeDirectory` (no readable `runtime.json`), `QMPError`.
    public static func adopt(directory: VMRuntimeDirectory, options: Options = Options(),
                             logger: Logger = Logger(label: "hostmesh.hypervisor.vm")) async throws -> VMProcess {
        guard let pid = directory.readPid() else {
            throw HypervisorError.notRunning(directory: directory.path)
        }
        guard let startTime = ChildProcess.startTime(pid) else {
            throw HypervisorError.stalePidFile(directory: directory.path, pid: pid, reason: "is not running")
        }
        guard let argv = ChildProcess.commandLine(pid), argv.contains(QEMUCommandLine.qmpArgument(directory)) else {
            let owner = ChildProcess.commandLine(pid)?.first ?? "another process"
            throw HypervisorError.stalePidFile(directory: directory.path, pid: pid, reason: "now belongs to \(owner), not this VM's QEMU")
        }
        var record: VMRuntimeRecord
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: directory.recordFile))
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            record = try decoder.decode(VMRuntimeRecord.self, from: data)
        } catch {
            throw HypervisorError.runtimeDirectory(path: directory.path, reason: "runtime.json is missing or unreadable (\(error))")
        }
        record.pid = pid
        record.directory = directory
        var logger = logger
        logger[metadataKey: "vm.id"] = "\(record.spec.id)"
        let qmp = try await QMPClient.connect(path: directory.qmpSocket, configuration: options.qmp, logger: logger)
        logger.debug("qemu adopted", metadata: ["vm.pid": "\(pid)", "vm.dir": "\(directory.path)"])
        return VMProcess(record: record, qmp: qmp, adopted: true, startTime: startTime, logger: logger)
    }

    /// The exit, if QEMU has exited (checks now, never waits).
    public func exitIfEnded() -> VMExit? {
        if let exit { return exit }
        let status: VMExit.Status
        switch ChildProcess.wait(pid) {
        case let .exited(reaped):
            status = reaped
        case .running:
            return nil
        case .notWaitable:
            // Not our child (adopted after an agent restart): alive while the same process
            // (pid and start time) is there and not a zombie.
            guard ChildProcess.startTime(pid) == nil || ChildProcess.startTime(pid) != startTime else { return nil }
            status = .unknown
        }
        let exit = VMExit(status: status, logTail: directory.qemuLogTail())
        self.exit = exit
        logger.debug("qemu exited", metadata: ["vm.pid": "\(pid)", "vm.exit": "\(exit.status)"])
        return exit
    }

    /// Waits until QEMU exits. Throws `CancellationError` if the task is cancelled.
    public func waitForExit(pollInterval: Duration = .milliseconds(100)) async throws -> VMExit {
        while true {
            if let exit = exitIfEnded() { return exit }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// Stops QEMU: optionally an ACPI power-down the guest may honour, then `quit`, then SIGKILL.
    /// Always returns with QEMU gone.
    ///
    /// - Parameters:
    ///   - powerdownGrace: if set, press the power button and wait this long for the guest.
    ///   - quitGrace: after `quit`, how long to wait before SIGKILL.
    @discardableResult
    public func stop(powerdownGrace: Duration? = nil, quitGrace: Duration = .seconds(3)) async -> VMExit {
        if let exit = exitIfEnded() { return exit }
        if let powerdownGrace {
            try? await qmp.systemPowerdown() // best effort: `quit` and then SIGKILL follow if the guest does not go
            if let exit = await waitForExit(atMost: powerdownGrace) { return exit }
        }
        do {
            try await qmp.execute("quit", timeout: .seconds(1))
        } catch {
            logger.debug("quit failed, will kill", metadata: ["error": "\(error)"])
        }
        if let exit = await waitForExit(atMost: quitGrace) { return exit }
        logger.debug("qemu ignored quit, sending SIGKILL", metadata: ["vm.pid": "\(pid)"])
        ChildProcess.signal(pid, SIGKILL)
        while true {
            if let exit = await waitForExit(atMost: .seconds(5)) { return exit }
            // A process in uninterruptible sleep ignores SIGKILL until its I/O ends; keep trying.
            ChildProcess.signal(pid, SIGKILL)
        }
    }

    /// Sends SIGKILL now and returns without waiting (test cleanup, emergencies). Safe to call
    /// from `defer` and after the process is gone... unless its pid was reused, which the start
    /// time check rules out.
    public nonisolated func kill() {
        guard ChildProcess.startTime(pid) == startTime, startTime != nil else { return }
        ChildProcess.signal(pid, SIGKILL)
    }

    // MARK: internals

    private func waitForExit(atMost limit: Duration) async -> VMExit? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let exit = exitIfEnded() { return exit }
            try? await Task.sleep(for: .milliseconds(20)) // cancelled: the bounded wait spins to its deadline, no longer
        }
        return exitIfEnded()
    }

    private static func waitForQMP(pid: pid_t, spec: VMSpec, directory: VMRuntimeDirectory,
                                   options: Options, logger: Logger) async throws -> QMPClient {
        let started = ContinuousClock.now
        let deadline = started + options.startupTimeout
        var configuration = options.qmp
        configuration.connectTimeout = min(configuration.connectTimeout, .seconds(2))
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            if let status = ChildProcess.reap(pid) {
                throw HypervisorError.exitedDuringStartup(vm: spec.id, exit: VMExit(status: status, logTail: directory.qemuLogTail()))
            }
            if access(directory.qmpSocket, F_OK) == 0 {
                do {
                    return try await QMPClient.connect(path: directory.qmpSocket, configuration: configuration, logger: logger)
                } catch {
                    lastError = error
                }
            }
            // QEMU makes its QMP socket some 20-40 ms after exec: look often at first, since a
            // migration's destination waits for it (the prepare phase, issue 18), then less.
            try await Task.sleep(for: ContinuousClock.now - started < .seconds(1) ? .milliseconds(2) : .milliseconds(20))
        }
        logger.debug("qmp not ready", metadata: ["error": "\(lastError.map { "\($0)" } ?? "no socket")"])
        throw HypervisorError.qmpNotReady(vm: spec.id, after: options.startupTimeout, logTail: directory.qemuLogTail())
    }

    private static func write(_ record: VMRuntimeRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(record).write(to: URL(fileURLWithPath: record.directory.recordFile), options: .atomic)
    }
}
