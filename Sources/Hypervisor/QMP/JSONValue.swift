public import Foundation

/// A JSON value as QMP sends and receives it.
///
/// QMP results are mostly objects with a handful of fields, and some of their shapes vary between
/// QEMU versions; keeping the raw tree lets callers decode typed results and still report the
/// exact message when the shape is unexpected.
public enum JSONValue: Sendable, Hashable, Codable, CustomStringConvertible {
    /// JSON `null`.
    case null
    /// JSON `true` / `false`.
    case bool(Bool)
    /// A number without a fraction that fits in 64 bits (QMP byte counts, ids, sizes).
    case int(Int64)
    /// Any other number.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object. Key order is not preserved (QMP does not depend on it).
    case object([String: JSONValue])

    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) { // not this type: the next is tried; none fits throws
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) { // as above
            self = .int(value)
        } else if let value = try? container.decode(Double.self) { // as above
            self = .double(value)
        } else if let value = try? container.decode(String.self) { // as above
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) { // as above
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Encodes the value as JSON.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case let .bool(value): try container.encode(value)
        case let .int(value): try container.encode(value)
        case let .double(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .array(value): try container.encode(value)
        case let .object(value): try container.encode(value)
        }
    }

    /// The member `key` of an object, or nil for anything else.
    public subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    /// The string payload, if this is a string.
    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    /// The integer payload, if this is an integral number.
    public var intValue: Int64? {
        switch self {
        case let .int(value): return value
        case let .double(value) where value.rounded() == value && abs(value) < 9.2e18: return Int64(value)
        default: return nil
        }
    }

    /// The numeric payload as a Double, if this is a number.
    public var doubleValue: Double? {
        switch self {
        case let .int(value): return Double(value)
        case let .double(value): return value
        default: return nil
        }
    }

    /// Compact JSON text (used in logs and error messages).
    public var description: String {
        (try? String(decoding: JSONValue.encoder.encode(self), as: UTF8.self)) ?? "<unencodable>" // for logs and messages only
    }

    /// Parses one JSON text.
    public static func parse(_ data: Data) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Converts any `Encodable` (command arguments) to a JSON tree.
    public static func from(_ value: some Encodable) throws -> JSONValue {
        try parse(encoder.encode(value))
    }

    /// Decodes a typed value from this tree (command results).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: JSONValue.encoder.encode(self))
    }

    /// Compact, deterministic JSON (no newlines, which would break QMP's line framing in logs).
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
