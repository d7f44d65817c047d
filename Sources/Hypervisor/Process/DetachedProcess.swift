import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Helper processes that, like QEMU, must outlive the agent and must not disturb it: the lease
/// keeper (Protocol.md §9.2) and the QEMU it starts. Spawned as QEMU is (`ChildProcess`: own
/// session, default signal dispositions, no inherited descriptors beyond stdio, output to a
/// file), never with Foundation's `Process`, which takes over this process's SIGCHLD handling
/// and would reap QEMUs behind their supervisors' backs.
public enum DetachedProcess {
    /// Spawns `executable` with `arguments`, stdin from /dev/null, stdout and stderr to `output`
    /// (truncated first). Returns the pid: this process's child, to be reaped with `reap`.
    public static func spawn(executable: String, arguments: [String], output: String) throws(HypervisorError) -> Int32 {
        try ChildProcess.spawn(executable: executable, arguments: arguments, output: .init(path: output))
    }

    /// Reaps child `pid` if it has exited: its status; nil while it runs (or when it is not
    /// this process's child and still exists); `.unknown` when it is gone and not waitable.
    public static func reap(_ pid: Int32) -> VMExit.Status? { ChildProcess.reap(pid) }

    /// Replaces this process with `executable` (`arguments` without argv[0]), which is killed
    /// (SIGKILL) when this process's parent dies: asked for before the exec, and refused (the
    /// call returns) when the parent is no longer `parent` (it died before the request). Returns
    /// only on failure, with the reason.
    public static func execDyingWithParent(_ parent: Int32, executable: String, arguments: [String]) -> String {
        guard ChildProcess.setParentDeathSignal(SIGKILL) else { return "prctl(PR_SET_PDEATHSIG) failed: \(String(cString: strerror(errno)))" }
        guard getppid() == parent else { return "the parent \(parent) is gone" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        execv(executable, argv)
        return "cannot run \(executable): \(String(cString: strerror(errno)))"
    }
}
