/// Where a shell is in its one-way lifecycle: `idle → starting → running → stopped`, or
/// `idle → stopped`. A failed start goes back to `idle`; nothing leaves `stopped`.
///
/// `starting` is claimed on the loop before the first `await` of a start (binding a socket),
/// so a second start or a stop that arrives meanwhile sees it and does not bind twice.
public enum ShellPhase: Hashable, Sendable {
    /// Created, not started (or a start failed and was undone).
    case idle
    /// A start is binding its socket.
    case starting
    /// Started: sockets open, timers armed.
    case running
    /// Stopped for good: create a new shell to run again.
    case stopped
}
