import Foundation

/// Why a text is not an address.
public struct HostPortError: Error, Sendable, CustomStringConvertible {
    /// The text that does not parse.
    public let text: String
    public var description: String { "\"\(text)\" is not an address of the form host:port (e.g. 10.0.0.2:7946 or [::1]:7946)" }
}

/// A `host:port` endpoint.
public struct HostPort: Sendable, Hashable, CustomStringConvertible, Codable {
    /// Host name or IP literal (without brackets).
    public var host: String
    /// TCP/UDP port.
    public var port: Int

    /// An endpoint.
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`.
    public init(parsing text: String) throws(HostPortError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw HostPortError(text: text)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw HostPortError(text: text) }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
