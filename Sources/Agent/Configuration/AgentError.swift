/// Why the agent cannot start or do what was asked, with the fix.
public enum AgentError: Error, Sendable, CustomStringConvertible {
    /// The configuration file is invalid.
    case badConfiguration(path: String, reason: String)
    /// Identity material is missing or inconsistent.
    case identity(String)
    /// A peer broke the agent protocol.
    case protocolViolation(String)
    /// Durable state the agent needs to decide safely cannot be read: it refuses instead of guessing.
    case stateUnreadable(path: String, reason: String, fix: String)

    public var description: String {
        switch self {
        case let .badConfiguration(path, reason): return "configuration \(path): \(reason)"
        case let .identity(text): return text
        case let .protocolViolation(text): return "agent protocol violation: \(text)"
        case let .stateUnreadable(path, reason, fix): return "cannot read \(path): \(reason). \(fix)"
        }
    }
}
