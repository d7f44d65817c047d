import Foundation

/// The control API: how `hostmesh` commands talk to the local agent (Protocol.md §7).
///
/// A unix stream socket (`<state_dir>/control.sock`, mode 0600: only root talks to the agent).
/// The client sends one request line, `{"method": "...", "params": {...}}`; the agent answers
/// with zero or more `{"progress": {...}}` lines and then exactly one `{"result": {...}}` or
/// `{"error": {"code": "...", "message": "..."}}` line, and closes. Lines are UTF-8 JSON ending
/// in `\n`, at most 1 MiB each.
public enum ControlWire {
    /// Largest line accepted.
    public static let maxLineBytes = 1 << 20
}

/// A failure reported by the agent, with a stable code and a message for the operator.
public struct ControlError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    /// Stable machine-readable code, e.g. "not_found", "bad_request", "conflict", "unavailable".
    public var code: String
    /// What happened and what to do.
    public var message: String

    /// An error with `code` (one of the five above) and a `message` that names the cause and the fix.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    /// The request does not parse or names no method.
    public static func badRequest(_ message: String) -> ControlError { ControlError(code: "bad_request", message: message) }
    /// The named thing does not exist.
    public static func notFound(_ message: String) -> ControlError { ControlError(code: "not_found", message: message) }
    /// The request conflicts with the current state.
    public static func conflict(_ message: String) -> ControlError { ControlError(code: "conflict", message: message) }
    /// The agent cannot do it right now.
    public static func unavailable(_ message: String) -> ControlError { ControlError(code: "unavailable", message: message) }
    /// Something failed while doing it.
    public static func failed(_ message: String) -> ControlError { ControlError(code: "failed", message: message) }
}

struct RequestHead: Decodable { var method: String }
struct RequestLine<P: Encodable>: Encodable { var method: String; var params: P }
struct RequestParams<P: Decodable>: Decodable { var params: P }

/// An empty parameter or result object, `{}`: the parameters of `status`, `members`, `leave`,
/// `vm.list`, `migrations` and `ownership`.
public struct Empty: Codable, Sendable, Equatable {
    /// `{}`.
    public init() {}
}

enum ResponseLine<R: Decodable>: Decodable {
    case progress(Data)
    case result(R)
    case error(ControlError)

    private enum Keys: String, CodingKey { case progress, result, error }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        if let error = try c.decodeIfPresent(ControlError.self, forKey: .error) {
            self = .error(error)
        } else if c.contains(.result) {
            self = .result(try c.decode(R.self, forKey: .result))
        } else if c.contains(.progress) {
            self = .progress(Data()) // the raw line is handed out by the client
        } else {
            throw ControlError.badRequest("response line has none of progress, result, error")
        }
    }
}

enum WrappedKind: String { case progress, result, error }

struct Wrapped<T: Encodable>: Encodable {
    typealias Kind = WrappedKind
    let kind: Kind
    let value: T

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(value, forKey: Key(stringValue: kind.rawValue))
    }
}

let controlEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return e
}()
