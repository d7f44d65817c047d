import Foundation
public import HA
public import Hypervisor
import MeshTime
import Synchronization

/// The lease keeper (Protocol.md §9.2): one process per VM copy on shared storage, started by
/// the agent before QEMU, that holds this host's lease file for the VM while the copy runs and
/// kills the copy (SIGKILL) when it cannot renew in time or finds a claim above its epoch.
///
/// It is its own process so that an agent killed alone (its QEMUs live on, for re-adoption) does
/// not let the lease expire under a running copy. Decisions are `LeaseOwnerCore`'s; this shell
/// does the file I/O on a separate thread (a write that hangs on dead storage must not stop the
/// ticks that fence), watches QEMU by the pid its runtime directory names, and reports where it
/// is in `lease-keeper.state` in that directory (one line: `acquiring`, `incoming`, `held`,
/// `refused: …`, `fenced: …`, `released`, `ended: …`).
///
/// A keeper of a migration's destination (`incoming`) writes its lease as `state incoming` until
/// the agent signals the commit (SIGUSR1): from then on it writes `held`, renewing at once, and
/// reports `held` once such a write completed (Protocol.md §9.2, "Leases and handovers").
public struct LeaseKeeper: Sendable {
    /// How the keeper ended.
    public enum Outcome: Sendable, Equatable {
        /// A claim above this epoch exists, or the first write failed: QEMU must not start.
        case refused(String)
        /// The lease could not be renewed or was superseded: the copy was killed.
        case fenced(String)
        /// The agent stopped the VM on purpose (SIGTERM): the lease says `released`.
        case released
        /// QEMU ended (or never appeared): nothing to guard.
        case ended(String)

        /// The keeper's exit status.
        public var exitStatus: Int32 {
            switch self {
            case .refused: return 3
            case .fenced: return 4
            case .released, .ended: return 0
            }
        }
    }

    /// The `.hostmesh` lease directory on the shared storage.
    public var leaseDirectory: String
    public var vm: String
    public var host: String
    public var epoch: Int64
    /// The VM's runtime directory (QEMU's `qemu.pid`; the keeper's state and pid files).
    public var runtimeDirectory: String
    public var settings: LeaseSettings
    /// How long QEMU may take to write its pid file after the lease is acquired.
    public var startupTimeout: Duration
    /// Test seam (set only by the hostmesh executable's TestHooks): when it returns a reason,
    /// the renewal fails with it, as a write to a storage that is cut off would.
    public var injectedWriteFailure: @Sendable () -> String?
    /// Test seam (TestHooks too): how long each renewal waits before it writes, as a write to a
    /// slow storage would take.
    public var injectedWriteDelay: @Sendable () -> Duration?
    /// The `hostmesh` executable whose `qemu-exec` this keeper starts QEMU with, as its own child
    /// that dies with it (`QEMUCommand`, written by the agent once the lease is held); nil: QEMU
    /// is started by someone else and found by its pid file (a copy that ran before its keeper).
    public var spawnsQEMUWith: String?
    /// The keeper of a migration's destination: its lease says `incoming` until the commit (SIGUSR1).
    public var incoming: Bool

    public init(leaseDirectory: String, vm: String, host: String, epoch: Int64, runtimeDirectory: String, settings: LeaseSettings,
                startupTimeout: Duration = .seconds(60), spawnsQEMUWith: String? = nil, incoming: Bool = false,
                injectedWriteFailure: @escaping @Sendable () -> String? = { nil },
                injectedWriteDelay: @escaping @Sendable () -> Duration? = { nil }) {
        self.incoming = incoming
        self.injectedWriteDelay = injectedWriteDelay
        self.leaseDirectory = leaseDirectory
        self.vm = vm
        self.host = host
        self.epoch = epoch
        self.runtimeDirectory = runtimeDirectory
        self.settings = settings
        self.startupTimeout = startupTimeout
        self.spawnsQEMUWith = spawnsQEMUWith
        self.injectedWriteFailure = injectedWriteFailure
    }

    public static func stateFile(runtimeDirectory: String) -> String { runtimeDirectory + "/lease-keeper.state" }
    public static func pidFile(runtimeDirectory: String) -> String { runtimeDirectory + "/lease-keeper.pid" }
    /// What QEMU to start (`QEMUCommand` as JSON), written by the agent for a keeper that spawns QEMU.
    public static func commandFile(runtimeDirectory: String) -> String { runtimeDirectory + "/qemu.command" }
    /// The pid of the QEMU the keeper started.
    public static func qemuPidFile(runtimeDirectory: String) -> String { runtimeDirectory + "/lease-keeper.qemu" }
    /// How the QEMU the keeper started ended: `exited N` or `signaled N`.
    public static func qemuExitFile(runtimeDirectory: String) -> String { runtimeDirectory + "/qemu.exit" }

    /// How close its renewals come to the fence (`LeaseRenewalWatch.Report`'s text), rewritten
    /// after every renewal that completed: the file's age is how long ago the last one landed.
    public static func renewalsFile(runtimeDirectory: String) -> String { runtimeDirectory + "/lease-keeper.renewals" }

    /// What the keeper's renewals file says, and when it was written; nil when there is none (yet)
    /// or it does not read (being replaced).
    static func renewals(runtimeDirectory: String) -> (report: LeaseRenewalWatch.Report, written: Date)? {
        let path = renewalsFile(runtimeDirectory: runtimeDirectory)
        // Absent: no renewal completed yet, or no keeper; unreadable: replaced meanwhile.
        guard let data = FileManager.default.contents(atPath: path),
              let report = LeaseRenewalWatch.Report(text: String(decoding: data, as: UTF8.self)),
              let written = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date // gone meanwhile: none
        else { return nil }
        return (report, written)
    }

    /// What the keeper's state file says, if it exists.
    public static func state(runtimeDirectory: String) -> String? {
        // Absent or unreadable: no keeper has reported (yet).
        guard let data = FileManager.default.contents(atPath: stateFile(runtimeDirectory: runtimeDirectory)) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs until the copy ended, was fenced or released; blocks the calling thread (it is the
    /// keeper process's whole life).
    public func run() -> Outcome {
        installTerminationHandler()
        unlink(Self.renewalsFile(runtimeDirectory: runtimeDirectory)) // an earlier keeper's figures are not this one's
        report("\(getpid())", to: Self.pidFile(runtimeDirectory: runtimeDirectory))
        report("acquiring")
        let outcome = keep()
        switch outcome {
        case let .refused(why): report("refused: \(why)")
        case let .fenced(why): report("fenced: \(why)")
        case .released: report("released")
        case let .ended(why): report("ended: \(why)")
        }
        return outcome
    }

    private var files: LeaseFiles { LeaseFiles(directory: leaseDirectory) }
    private let origin = ContinuousClock.now
    private var now: MeshInstant { MeshInstant(sinceOrigin: ContinuousClock.now - origin) }

    private func keep() -> Outcome {
        // Acquire: one write, then a look for claims. A taker creates its claim and then reads
        // the leases again (it backs off when they changed), so of this write and that claim at
        // least one side sees the other (Protocol.md §9.2).
        let previous: UInt64
        do { previous = try files.read(vm: vm, host: host)?.counter ?? 0 } catch { return .refused("\(error)") }
        let acquiredAt = now
        do {
            if let failure = injectedWriteFailure() { throw KeeperFailure(why: failure) }
            try files.write(LeaseRecord(vm: vm, owner: host, epoch: epoch, counter: previous + 1, incoming: incoming))
            if let claim = try files.highestClaim(vm: vm), claim.epoch > epoch {
                return .refused("\(claim.host) claimed the VM at epoch \(claim.epoch), above this copy's \(epoch)")
            }
        } catch {
            return .refused("cannot write the lease: \(error)")
        }
        // Until the commit, a destination's renewals say `incoming`; the first `held` write that
        // completes after it is reported (the agent waits for it before the source may release).
        var writesIncoming = incoming
        var reportedHeld = !incoming
        report(incoming ? "incoming" : "held")
        var core = LeaseOwnerCore(settings: settings, epoch: epoch, counter: previous + 1, acquiredAt: acquiredAt)
        var watch = LeaseRenewalWatch(settings: settings, acquiredAt: acquiredAt)
        var lastWarning: ContinuousClock.Instant?
        var slowSinceWarning = 0
        // Off this loop: a local write that stalls must not delay the ticks that fence.
        let renewalsReport = OffLoopWriter(path: Self.renewalsFile(runtimeDirectory: runtimeDirectory))
        let mailbox = Mailbox()
        var qemu: (pid: Int32, start: UInt64)?
        var spawned = false
        let startupDeadline = ContinuousClock.now + startupTimeout
        var release: (outcome: Outcome, deadline: ContinuousClock.Instant)?
        while true {
            if terminationRequested.load(ordering: .relaxed), release == nil {
                _ = core.handle(.released)
                mailbox.waitIdle(atMost: .seconds(2))
                // The release only says "do not take over"; the copy is being stopped by the agent.
                do {
                    try files.write(LeaseRecord(vm: vm, owner: host, epoch: epoch, counter: core.counter + 1, held: false))
                    release = (.released, ContinuousClock.now + .seconds(10))
                } catch {
                    release = (.ended("stopped, but the release could not be written (\(error)); the lease expires instead"), ContinuousClock.now + .seconds(10))
                }
            }
            if let release {
                // A QEMU of its own dies with the keeper: the keeper waits (at most 10 s) until the
                // agent has made it quit, so that a stop is a quit, not a kill.
                guard spawned, let running = qemu, ContinuousClock.now < release.deadline else { return release.outcome }
                if let status = DetachedProcess.reap(running.pid) {
                    report(status)
                    return release.outcome
                }
                Thread.sleep(forTimeInterval: 0.02)
                continue
            }
            if qemu == nil, let executable = spawnsQEMUWith {
                switch startQEMU(with: executable) {
                case nil: break // not asked yet
                case let .success(started)?:
                    qemu = started
                    spawned = true
                case let .failure(failure)?:
                    return .ended("\(failure)")
                }
            } else if qemu == nil, let found = ProcessProbe.process(inPidFile: runtimeDirectory + "/qemu.pid", mentioning: runtimeDirectory + "/") {
                qemu = found
            }
            if let running = qemu {
                // Its own child is watched by waitpid: /proc can show a process that is still
                // becoming QEMU (an exec in progress) as a zombie for a moment.
                if spawned {
                    if let status = DetachedProcess.reap(running.pid) { return .ended("QEMU \(report(status))") }
                } else if !ProcessProbe.isAlive(running.pid, start: running.start) {
                    return .ended("QEMU exited")
                }
            }
            if qemu == nil, ContinuousClock.now >= startupDeadline { return .ended("QEMU did not start within \(startupTimeout)") }
            var events: [LeaseOwnerCore.Event] = mailbox.drain()
            let landed = mailbox.drainLanded()
            for renewal in landed {
                let seen = watch.completed(startedAt: renewal.startedAt, written: renewal.written, at: renewal.completedAt)
                guard seen.stretch > watch.warnAfter else { continue }
                // Said at most every 30 s, with how many were slow since: a storage that stays slow
                // would otherwise fill the log once a renewal.
                slowSinceWarning += 1
                if lastWarning.map({ ContinuousClock.now - $0 >= .seconds(30) }) ?? true {
                    let since = slowSinceWarning > 1 ? "; \(slowSinceWarning) such renewals in the last 30 s or more" : ""
                    renewalsReport.warn("the lease of \(vm) was \(seen.stretch.wholeMilliseconds) ms old when its renewal landed "
                         + "(its write took \(seen.write.wholeMilliseconds) ms\(since)): the copy is killed at \(settings.fenceAfter.wholeMilliseconds) ms, "
                         + "so the shared storage under \(leaseDirectory) is too slow for these lease timings")
                    lastWarning = ContinuousClock.now
                    slowSinceWarning = 0
                }
            }
            if !landed.isEmpty, let figures = watch.report { renewalsReport.post(figures.text) }
            if !reportedHeld, mailbox.heldLanded {
                reportedHeld = true
                report("held")
            }
            if writesIncoming, promotionRequested.load(ordering: .relaxed) {
                writesIncoming = false
                events.append(.renewNow(now: now))
            }
            events.append(.tick(now: now))
            for event in events {
                for directive in core.handle(event) {
                    switch directive {
                    case let .renew(counter):
                        renew(counter: counter, incoming: writesIncoming, mailbox: mailbox)
                    case let .fence(reason):
                        // Said first: the agent, seeing its QEMU die, must find why at once (it
                        // must not restart a fenced copy in place).
                        report("fenced: \(reason)")
                        if let running = qemu { ProcessProbe.kill(running.pid, start: running.start, within: settings.killBound) }
                        // A QEMU that writes its pid file later must not run either.
                        if qemu == nil, let late = ProcessProbe.process(inPidFile: runtimeDirectory + "/qemu.pid", mentioning: runtimeDirectory + "/") {
                            ProcessProbe.kill(late.pid, start: late.start, within: settings.killBound)
                        }
                        return .fenced(reason)
                    }
                }
            }
            // Until the commit is written, sliced: a commit (SIGUSR1) is acted on within a few ms,
            // not a tick later (the guest waits for it). Afterwards, and for any other keeper, one sleep.
            let wake = ContinuousClock.now + settings.tickInterval
            if reportedHeld {
                Thread.sleep(forTimeInterval: Double(settings.tickInterval.components.attoseconds) / 1e18 + Double(settings.tickInterval.components.seconds))
            }
            while ContinuousClock.now < wake, !(writesIncoming && promotionRequested.load(ordering: .relaxed)),
                  !(!reportedHeld && mailbox.heldLanded) {
                Thread.sleep(forTimeInterval: 0.002)
            }
        }
    }

    /// One renewal on its own thread; its result (and any claim found after it) lands in `mailbox`.
    private func renew(counter: UInt64, incoming: Bool, mailbox: Mailbox) {
        let startedAt = now, files = files, vm = vm, host = host, epoch = epoch, fail = injectedWriteFailure, delay = injectedWriteDelay
        let origin = origin
        mailbox.begin()
        Thread.detachNewThread {
            var result: [LeaseOwnerCore.Event] = []
            do {
                if let failure = fail() { throw KeeperFailure(why: failure) }
                if let slow = delay() { Thread.sleep(forTimeInterval: slow.inSeconds) }
                try files.write(LeaseRecord(vm: vm, owner: host, epoch: epoch, counter: counter, incoming: incoming))
                result.append(.renewed(startedAt: startedAt))
                let written = MeshInstant(sinceOrigin: ContinuousClock.now - origin)
                if !incoming { mailbox.noteHeldLanded() }
                if let claim = try files.highestClaim(vm: vm), claim.epoch > epoch {
                    result.append(.superseded(owner: claim.host, epoch: claim.epoch))
                }
                // The core learns of the renewal only now, after the look for claims on the same
                // storage: that is when the lease's age stops counting toward the fence.
                mailbox.noteLanded(startedAt: startedAt, written: written, completedAt: MeshInstant(sinceOrigin: ContinuousClock.now - origin))
            } catch {
                result.append(.renewFailed(why: "\(error)", now: MeshInstant(sinceOrigin: ContinuousClock.now - origin)))
            }
            mailbox.finish(result)
        }
    }

    /// Starts the QEMU the agent asked for (`commandFile`), as this keeper's child that is
    /// killed when the keeper dies: nil while the agent has not asked yet.
    private func startQEMU(with executable: String) -> Result<(pid: Int32, start: UInt64), KeeperFailure>? {
        let path = Self.commandFile(runtimeDirectory: runtimeDirectory)
        // Absent (not asked yet) or still being renamed into place: asked for at a later tick.
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        unlink(path) // consumed: one QEMU per request
        let command: QEMUCommand
        do { command = try JSONDecoder().decode(QEMUCommand.self, from: data) } catch {
            return .failure(KeeperFailure(why: "the agent's QEMU command \(path) does not read: \(error)"))
        }
        let pid: pid_t
        do {
            // From this (the main) thread, which lives as long as the keeper: the parent-death
            // signal is tied to the thread that created the child.
            pid = try DetachedProcess.spawn(executable: executable,
                                            arguments: ["qemu-exec", "--parent", "\(getpid())", "--", command.executable] + command.arguments,
                                            output: command.output)
        } catch {
            return .failure(KeeperFailure(why: "cannot start QEMU: \(error)"))
        }
        var start = ProcessProbe.startTime(pid)
        for _ in 0..<100 where start == nil {
            if let status = DetachedProcess.reap(pid) {
                return .failure(KeeperFailure(why: "QEMU \(report(status)) at once (see \(command.output))"))
            }
            Thread.sleep(forTimeInterval: 0.001) // between the spawn and the exec /proc may not show it yet
            start = ProcessProbe.startTime(pid)
        }
        guard let start else { return .failure(KeeperFailure(why: "QEMU \(pid) cannot be found in /proc after it was started")) }
        report("\(pid)", to: Self.qemuPidFile(runtimeDirectory: runtimeDirectory))
        return .success((pid, start))
    }

    /// Writes how this keeper's QEMU child ended, for the agent (`qemuExitFile`); returns it in words.
    @discardableResult
    private func report(_ status: VMExit.Status) -> String {
        switch status {
        case let .exited(code):
            report("exited \(code)", to: Self.qemuExitFile(runtimeDirectory: runtimeDirectory))
            return "exited with status \(code)"
        case let .signaled(signal):
            report("signaled \(signal)", to: Self.qemuExitFile(runtimeDirectory: runtimeDirectory))
            return "was killed by signal \(signal)"
        case .unknown:
            return "exited (status unknown)"
        }
    }

    /// How the QEMU a keeper started ended, as it wrote it; nil when it wrote nothing (yet).
    public static func qemuExit(runtimeDirectory: String) -> VMExit.Status? {
        // Absent: that keeper's QEMU has not ended, or the keeper died first (then nobody knows).
        guard let data = FileManager.default.contents(atPath: qemuExitFile(runtimeDirectory: runtimeDirectory)) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let value = Int32(parts[1]) else { return nil }
        return parts[0] == "exited" ? .exited(value) : parts[0] == "signaled" ? .signaled(value) : nil
    }

    private func report(_ state: String) { report(state, to: Self.stateFile(runtimeDirectory: runtimeDirectory)) }

    private func report(_ text: String, to path: String) {
        // The state file is for the agent and operators; the lease itself is the safety mechanism.
        try? Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private func installTerminationHandler() {
        signal(SIGTERM) { _ in terminationRequested.store(true, ordering: .relaxed) }
        signal(SIGUSR1) { _ in promotionRequested.store(true, ordering: .relaxed) }
    }
}

/// Set by SIGTERM: the agent stops the VM on purpose.
private let terminationRequested = Atomic<Bool>(false)
/// Set by SIGUSR1: the migration that brought the copy here committed; the lease says `held` now.
private let promotionRequested = Atomic<Bool>(false)

/// What QEMU the agent asks a keeper to start (`LeaseKeeper.commandFile`).
public struct QEMUCommand: Codable, Sendable {
    public var executable: String
    public var arguments: [String]
    /// Where its stdout and stderr go (QEMU's log in the runtime directory).
    public var output: String

    public init(executable: String, arguments: [String], output: String) {
        self.executable = executable
        self.arguments = arguments
        self.output = output
    }
}

private struct KeeperFailure: Error, CustomStringConvertible {
    let why: String
    var description: String { why }
}

/// Writes the keeper's renewals report and its warnings on a thread of their own, the latest
/// report only: the keeper's loop, which fences, never waits for a file.
private final class OffLoopWriter: Sendable {
    let path: String
    private let pending = Mutex<(report: String?, warnings: [String], writing: Bool)>((nil, [], false))

    init(path: String) { self.path = path }

    /// Replaces the report with `text` (written atomically).
    func post(_ text: String) { enqueue { $0.report = text } }

    /// A line for the keeper's log (its standard error, `lease-keeper.log` in the runtime directory).
    func warn(_ message: String) { enqueue { $0.warnings.append("warning: \(message)\n") } }

    private func enqueue(_ change: (inout (report: String?, warnings: [String], writing: Bool)) -> Void) {
        let start = pending.withLock { state -> Bool in
            change(&state)
            defer { state.writing = true }
            return !state.writing
        }
        guard start else { return }
        Thread.detachNewThread { [self] in
            while let next = pending.withLock({ state -> (report: String?, warnings: [String])? in
                guard state.report != nil || !state.warnings.isEmpty else {
                    state.writing = false
                    return nil
                }
                defer { state.report = nil; state.warnings = [] }
                return (state.report, state.warnings)
            }) {
                // The log is advisory: a full or failing disk must not stop the keeper (QEMU dies with it).
                for line in next.warnings { try? FileHandle.standardError.write(contentsOf: Data(line.utf8)) }
                // The report is for the agent and operators; the lease itself is the safety mechanism.
                if let report = next.report { try? Data(report.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) }
            }
        }
    }
}

/// Results of the renewal threads, for the keeper's loop.
private final class Mailbox: Sendable {
    private let state = Mutex<(events: [LeaseOwnerCore.Event], inFlight: Int)>(([], 0))
    private let held = Atomic<Bool>(false)
    private let landed = Mutex<[Landed]>([])

    /// A renewal issued at `startedAt`, written by `written`, done (claims looked at) by `completedAt`.
    struct Landed { let startedAt, written, completedAt: MeshInstant }

    func noteLanded(startedAt: MeshInstant, written: MeshInstant, completedAt: MeshInstant) {
        landed.withLock { $0.append(Landed(startedAt: startedAt, written: written, completedAt: completedAt)) }
    }
    func drainLanded() -> [Landed] { landed.withLock { let out = $0; $0 = []; return out } }

    /// A renewal that wrote `held` completed.
    func noteHeldLanded() { held.store(true, ordering: .relaxed) }
    var heldLanded: Bool { held.load(ordering: .relaxed) }

    func begin() { state.withLock { $0.inFlight += 1 } }
    func finish(_ events: [LeaseOwnerCore.Event]) { state.withLock { $0.events += events; $0.inFlight -= 1 } }
    func drain() -> [LeaseOwnerCore.Event] { state.withLock { let out = $0.events; $0.events = []; return out } }

    /// Waits until no renewal is in flight, or `limit` passed.
    func waitIdle(atMost limit: Duration) {
        let deadline = ContinuousClock.now + limit
        while state.withLock({ $0.inFlight > 0 }), ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
    }
}

/// Looks at QEMU through /proc (the agent's child, or the keeper's own).
enum ProcessProbe {
    /// The live process a pid file names, with its start time, if its command line mentions
    /// `mentioning` (QEMU's names its runtime directory: a stale pid file whose pid now belongs
    /// to another process is not taken for it).
    static func process(inPidFile path: String, mentioning: String) -> (pid: Int32, start: UInt64)? {
        // Absent or unreadable: QEMU has not written it yet.
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              let start = startTime(pid),
              let argv = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), // gone meanwhile: none
              String(decoding: argv.map { $0 == 0 ? 32 : $0 }, as: UTF8.self).contains(mentioning),
              startTime(pid) == start else { return nil }
        return (pid, start)
    }

    /// Whether `pid` still is the process that started at `start` and is not a zombie.
    static func isAlive(_ pid: Int32, start: UInt64) -> Bool { startTime(pid) == start }

    /// SIGKILLs `pid` if it still is that process, and waits (at most about `within`) until it is gone.
    static func kill(_ pid: Int32, start: UInt64, within: Duration) {
        let deadline = ContinuousClock.now + within
        repeat {
            guard isAlive(pid, start: start) else { return }
            Glibc.kill(pid, SIGKILL)
            Thread.sleep(forTimeInterval: 0.01)
        } while ContinuousClock.now < deadline
    }

    /// Field 22 of /proc/<pid>/stat (start time in clock ticks), nil when the process is gone or a zombie.
    static func startTime(_ pid: Int32) -> UInt64? {
        // Gone: no stat file.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3); the start time is field 22, fields[19].
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }
}
