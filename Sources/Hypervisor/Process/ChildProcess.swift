import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Starting QEMU and observing processes without blocking a thread.
///
/// posix_spawn rather than Foundation `Process`: QEMU must outlive the agent (re-adoption), so it
/// gets its own session (no terminal signals from the agent's), default signal dispositions, no
/// inherited descriptors beyond stdio, and its output goes to a file rather than a pipe that
/// would break when the agent dies.
enum ChildProcess {
    /// Where a spawned process's stdout and stderr go.
    struct Output {
        let path: String
    }

    /// Resolves `binary` (absolute, relative with a slash, or a name searched on PATH).
    static func resolve(binary: String) throws(HypervisorError) -> String {
        let candidates: [String]
        if binary.contains("/") {
            candidates = [binary]
        } else {
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
            candidates = path.split(separator: ":").map { "\($0)/\(binary)" }
        }
        var found: String?
        for candidate in candidates where access(candidate, F_OK) == 0 {
            if access(candidate, X_OK) == 0 { return candidate }
            found = candidate
        }
        if let found { throw .qemuNotExecutable(binary: found) }
        throw .qemuNotFound(binary: binary)
    }

    /// Spawns `executable` with `arguments`, stdin from /dev/null and stdout/stderr appended to
    /// `output` (truncated first). Returns the pid.
    static func spawn(executable: String, arguments: [String], output: Output) throws(HypervisorError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Descriptors opened without O_CLOEXEC elsewhere in the agent must not leak into QEMU.
        if let closeFrom = closeFromAction { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        // SwiftNIO ignores SIGPIPE in this process; QEMU gets the defaults back.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(spawnSetSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            if result == ENOENT { throw .qemuNotFound(binary: executable) }
            if result == EACCES { throw .qemuNotExecutable(binary: executable) }
            throw .spawnFailed(binary: executable, reason: String(cString: strerror(result)))
        }
        return pid
    }

    /// `prctl(PR_SET_PDEATHSIG, signal)`: this process gets `signal` when the thread that
    /// created it exits. Looked up at run time: Swift cannot call the variadic `prctl`, so it is
    /// called through a fixed five-argument signature, which the x86-64 and AArch64 calling
    /// conventions pass alike for integer arguments. Returns false when it failed.
    static func setParentDeathSignal(_ signal: Int32) -> Bool {
        guard let symbol = dlsym(nil, "prctl") else { return false }
        let prctl = unsafeBitCast(symbol, to: (@convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32).self)
        return prctl(1 /* PR_SET_PDEATHSIG */, UInt(signal), 0, 0, 0) == 0
    }

    /// glibc's `POSIX_SPAWN_SETSID` (0x80, <spawn.h>); Swift does not see it without _GNU_SOURCE.
    private static let spawnSetSID: Int32 = 0x80

    /// glibc >= 2.34 `posix_spawn_file_actions_addclosefrom_np`, looked up at run time because
    /// Swift does not import it without _GNU_SOURCE. Nil on older C libraries.
    private static let closeFromAction: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// What `waitpid(WNOHANG)` says about a pid.
    enum WaitResult: Equatable {
        /// Our child, and it has exited (now reaped).
        case exited(VMExit.Status)
        /// Our child, still running, or exiting but not yet reapable (a multithreaded
        /// process's leader shows as a zombie until its last thread is gone).
        case running
        /// Not our child (or already reaped): waitpid cannot tell.
        case notWaitable
    }

    /// Reaps `pid` if it is our child and has exited.
    static func wait(_ pid: pid_t) -> WaitResult {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return .running }
        guard result == pid else { return .notWaitable }
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift cannot import.
        let signal = status & 0x7f
        return .exited(signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal))
    }

    /// Reaps `pid` if it is our child and has exited; nil while it runs. A child that cannot be
    /// waited for and no longer exists was reaped by someone else (or auto-reaped because the
    /// process ignores SIGCHLD, which some libraries set): it is gone, status unknown.
    static func reap(_ pid: pid_t) -> VMExit.Status? {
        switch wait(pid) {
        case let .exited(status): return status
        case .running: return nil
        case .notWaitable: return startTime(pid) == nil ? .unknown : nil
        }
    }

    /// SIGKILLs our child `pid` and waits (without blocking a thread) until it is reaped or
    /// turns out not to be waitable (already reaped, or not our child). At most about 2 s.
    static func killAndReap(_ pid: pid_t) async {
        signal(pid, SIGKILL)
        for _ in 0..<400 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            // Cancellation must not skip the reaping: fall back to a short blocking sleep.
            do { try await Task.sleep(for: .milliseconds(5)) } catch { usleep(5_000) }
        }
    }

    /// The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), which
    /// with the pid identifies a process across pid reuse; nil if it does not exist or is a zombie.
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), // unreadable: gone (nil), as documented
              let close = stat.lastIndex(of: ")") else { return nil }
        // The command name (field 2) may contain spaces; fields after its ')' are plain.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }

    /// The argv of a running process (from /proc/<pid>/cmdline).
    static func commandLine(_ pid: pid_t) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }.filter { !$0.isEmpty }
    }

    /// Sends `signal` to `pid`; errors (already gone) are ignored.
    static func signal(_ pid: pid_t, _ signal: Int32) {
        _ = Glibc.kill(pid, signal)
    }
}
