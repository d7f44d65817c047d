public import Logging

/// How the agent writes its log lines (`log_format`).
public enum LogLineFormat: String, CaseIterable, Sendable {
    /// swift-log's default: `2026-12-05T13:00:00+0000 info hostmesh.a: key=value message`.
    case text
    /// logfmt: `ts=… level=info logger=hostmesh.a msg="…" key=value`, one event per line.
    case logfmt
    /// One JSON object per line: `ts`, `level`, `logger`, `msg`, `source`, then the metadata.
    case json

    /// The line for one event (without the newline). `timestamp` is RFC 3339 with milliseconds.
    public func line(timestamp: String, level: Logger.Level, label: String, message: String, source: String,
                     metadata: Logger.Metadata) -> String {
        switch self {
        case .text:
            let fields = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(timestamp) \(level) \(label):\(fields.isEmpty ? "" : " " + fields) \(message)"
        case .logfmt:
            var parts = ["ts=\(timestamp)", "level=\(level)", "logger=\(Self.logfmtValue(label))", "msg=\(Self.logfmtValue(message))"]
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                parts.append("\(Self.logfmtKey(key))=\(Self.logfmtValue("\(value)"))")
            }
            return parts.joined(separator: " ")
        case .json:
            var fields: [(String, String)] = [("ts", Self.jsonString(timestamp)), ("level", Self.jsonString("\(level)")),
                                              ("logger", Self.jsonString(label)), ("msg", Self.jsonString(message)),
                                              ("source", Self.jsonString(source))]
            let fixed = Set(fields.map(\.0))
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) where !fixed.contains(key) {
                fields.append((key, Self.json(value)))
            }
            return "{" + fields.map { "\(Self.jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}"
        }
    }

    /// A logfmt value: bare when it has no space, quote, equals sign or control character and
    /// is not empty; otherwise quoted with `\"`, `\\`, `\n`, `\r`, `\t` escaped.
    static func logfmtValue(_ value: String) -> String {
        let bare = !value.isEmpty && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0 != "\\" && $0.value != 0x7f }
        if bare { return value }
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A logfmt key: characters that would break the line become `_`.
    static func logfmtKey(_ key: String) -> String {
        String(String.UnicodeScalarView(key.unicodeScalars.map { $0.value > 0x20 && $0 != "=" && $0 != "\"" ? $0 : "_" }))
    }

    /// A JSON string literal (RFC 8259 escapes).
    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A metadata value as JSON: strings as strings, dictionaries as objects, arrays as arrays.
    static func json(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let text): jsonString(text)
        case .stringConvertible(let convertible): jsonString(convertible.description)
        case .array(let values): "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            "{" + entries.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }
}
