/// Why the virtual switch shell could not do what was asked, with the cause and the fix.
public enum VirtualSwitchError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The switch core refused (unknown port, wrong state, …).
    case `switch`(SwitchError)
    /// Overlay peer configuration was refused.
    case overlay(OverlayError)
    /// A unix socket path longer than `sun_path` allows (107 bytes).
    case socketPathTooLong(path: String)
    /// Something other than a socket exists where the port's socket must be bound.
    case pathNotASocket(path: String)
    /// A socket system call failed.
    case socket(what: String, errno: Int32)
    /// SwiftNIO could not adopt a socket.
    case channel(what: String, reason: String)
    /// The switch is not started (call `start()` or `run()` first).
    case notStarted
    /// The switch was stopped and cannot be used again.
    case stopped

    public var description: String {
        switch self {
        case let .switch(error):
            return error.description
        case let .overlay(error):
            return error.description
        case let .socketPathTooLong(path):
            return "socket path \(path) is longer than 107 bytes: use a shorter runtime directory"
        case let .pathNotASocket(path):
            return "\(path) exists and is not a socket: remove it or choose another path for the NIC's socket"
        case let .socket(what, code):
            return "could not \(what): errno \(code)\(code == 98 ? " (address in use: another process owns it)" : "")"
        case let .channel(what, reason):
            return "could not \(what): \(reason)"
        case .notStarted:
            return "the virtual switch is not running: call start() (or run()) before using the overlay"
        case .stopped:
            return "the virtual switch was stopped: create a new one"
        }
    }
}
