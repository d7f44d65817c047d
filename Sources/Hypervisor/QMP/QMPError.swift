/// Failures of a QMP conversation, phrased for the person who has to act on them.
public enum QMPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The unix socket could not be connected (QEMU not running, or started without this `-qmp`).
    case connectFailed(path: String, reason: String)
    /// The socket accepted but QEMU sent no greeting in time.
    case greetingTimeout(path: String, after: Duration)
    /// The first message was not a QMP greeting.
    case notQMP(path: String, firstMessage: String)
    /// A command got no answer in time. The connection stays usable; a late answer is dropped.
    case timeout(command: String, after: Duration)
    /// QEMU answered the command with a QMP error.
    case commandFailed(command: String, errorClass: String, description: String)
    /// The connection closed (QEMU exited or crashed, or `close()` was called) before the answer.
    case disconnected(command: String?, reason: String)
    /// QEMU sent a line that is not JSON. The connection is closed: nothing after it can be trusted.
    case malformedMessage(excerpt: String)
    /// QEMU sent JSON that is not a QMP message (no `return`, `error`, `event` or `QMP` member).
    case unexpectedMessage(excerpt: String)
    /// QEMU sent a single line longer than the configured limit.
    case messageTooLong(limit: Int)
    /// The result of `command` did not have the shape this client expects.
    case unexpectedResult(command: String, expected: String, detail: String)

    public var description: String {
        switch self {
        case let .connectFailed(path, reason):
            return "cannot connect to QMP socket \(path): \(reason); is QEMU running with -qmp unix:\(path),server=on,wait=off?"
        case let .greetingTimeout(path, after):
            return "QMP socket \(path) sent no greeting within \(after): QEMU serves one QMP client at a time, so another client may hold it, or QEMU is stuck"
        case let .notQMP(path, first):
            return "\(path) is not a QMP socket: its first message was \(first)"
        case let .timeout(command, after):
            return "QMP command \(command) got no answer within \(after): QEMU is busy or stuck; retry, or inspect it with human-monitor-command"
        case let .commandFailed(command, errorClass, description):
            return "QEMU refused \(command): \(errorClass): \(description)"
        case let .disconnected(command, reason):
            let what = command.map { "while waiting for \($0)" } ?? "QMP connection"
            return "QMP connection closed \(what): \(reason); if QEMU exited, its log in the VM directory says why"
        case let .malformedMessage(excerpt):
            return "QEMU sent invalid JSON on QMP (connection closed): \(excerpt)"
        case let .unexpectedMessage(excerpt):
            return "QEMU sent a message that is not QMP (connection closed): \(excerpt)"
        case let .messageTooLong(limit):
            return "QEMU sent a QMP message longer than \(limit) bytes (connection closed); raise QMPClient.Configuration.maxMessageBytes if this is legitimate"
        case let .unexpectedResult(command, expected, detail):
            return "result of \(command) is not a \(expected): \(detail); this QEMU version may not be supported (tested with 7.2)"
        }
    }
}
