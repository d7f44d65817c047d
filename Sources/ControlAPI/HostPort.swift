/// A `host:port` endpoint: how agents, the configuration and the control API name an address.
public struct HostPort: Sendable, Hashable, CustomStringConvertible, Codable {
    /// Host name or IP literal (without brackets).
    public var host: String
    /// TCP/UDP port, 0...65535 (0: let the system choose, for listeners only).
    public var port: Int

    /// An endpoint; `port` is not checked (use `init(parsing:)` for input from a person).
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; the port must be 0...65535 and the host non-empty.
    public init(parsing text: String) throws(HostPortError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw HostPortError(text: text)
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw HostPortError(text: text) }
        self.init(host: host, port: port)
    }

    /// `host:port`, with brackets round an IPv6 literal.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// True for a listener on every address (`0.0.0.0` or `::`), which is nobody's address to reach.
    public var isWildcard: Bool { Self.isWildcard(host) }

    /// True for `0.0.0.0` and `::`.
    public static func isWildcard(_ host: String) -> Bool { host == "0.0.0.0" || host == "::" || host == "[::]" }

    /// Decodes the `host:port` string form.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description)) }
    }

    /// Encodes as the `host:port` string.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Text that is not a `host:port` address.
public struct HostPortError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The text as given.
    public var text: String

    /// The error for `text`.
    public init(text: String) { self.text = text }

    public var description: String {
        "\"\(text)\" is not an address of the form host:port with a port 0-65535 (e.g. 10.0.0.2:7946 or [::1]:7946)"
    }
}
