/// Why a VM's QEMU is gone when nobody asked it to go: what `RestartCore` is told and what
/// `vm list`/`vm show` print as the restart reason.
public enum RestartExit: Sendable, Equatable, CustomStringConvertible {
    /// QEMU was killed by this signal (SIGKILL: 9).
    case killed(signal: Int32)
    /// QEMU exited by itself with this status, not 0 (a clean exit, the guest powering off, is
    /// not a failure and is not restarted).
    case exited(code: Int32)
    /// QEMU is gone but its status went elsewhere (a QEMU adopted after an agent restart).
    case vanished
    /// A restart was tried and QEMU did not come up.
    case startFailed(String)

    public var description: String {
        switch self {
        case let .killed(signal): return "QEMU was killed by signal \(signal)"
        case let .exited(code): return "QEMU exited with status \(code)"
        case .vanished: return "QEMU vanished (exit status unknown)"
        case let .startFailed(why): return "the restart failed: \(why)"
        }
    }
}
