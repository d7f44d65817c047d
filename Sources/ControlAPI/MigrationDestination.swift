/// Where `migrate` sends a VM (Protocol.md §7).
///
/// On the wire it is the string older clients send: `"auto"`, a member's host id, or a channel
/// address `host:port`. Host ids never contain `:` (Protocol.md §2) and addresses always do, so
/// the string decodes without knowing the members. The one string that is ambiguous, a host
/// named `auto`, is sent as the object `{"host": "auto"}`; `{"address": …}` and `{"auto": true}`
/// are accepted too.
public enum MigrationDestination: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The agent picks the member with the most free memory after the VM (§7, `DestinationChooser`).
    case auto
    /// A member, by host id; its channel address comes from gossip.
    case host(String)
    /// A channel address, used as given (the peer need not be a member).
    case address(HostPort)

    /// Parses what a person typed after `--to`: a host id, or `host:port` when it has a colon.
    public init(parsing text: String) throws(HostPortError) {
        if text.contains(":") {
            self = .address(try HostPort(parsing: text))
        } else if text == "auto" {
            self = .auto
        } else {
            self = .host(text)
        }
    }

    /// `auto`, the host id, or `host:port`.
    public var description: String {
        switch self {
        case .auto: return "auto"
        case .host(let id): return id
        case .address(let address): return address.description
        }
    }

    private enum Keys: String, CodingKey { case auto, host, address }

    /// Decodes the string form or the one-key object form.
    public init(from decoder: any Decoder) throws {
        // Not a string: the object form is tried next, and its error is the one thrown.
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            do { try self.init(parsing: text) } catch {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                    "\(error); a destination is \"auto\", a member's host id, or its channel address host:port"))
            }
            return
        }
        let c = try decoder.container(keyedBy: Keys.self)
        if let host = try c.decodeIfPresent(String.self, forKey: .host) {
            self = .host(host)
        } else if let address = try c.decodeIfPresent(HostPort.self, forKey: .address) {
            self = .address(address)
        } else if try c.decodeIfPresent(Bool.self, forKey: .auto) == true {
            self = .auto
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "a destination object needs one of \"host\", \"address\" or \"auto\": true"))
        }
    }

    /// Encodes as the string older agents read, except for a host named like a keyword or an address.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .auto:
            var c = encoder.singleValueContainer()
            try c.encode("auto")
        case .address(let address):
            var c = encoder.singleValueContainer()
            try c.encode(address.description)
        case .host(let id) where id == "auto" || id.contains(":"):
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(id, forKey: .host)
        case .host(let id):
            var c = encoder.singleValueContainer()
            try c.encode(id)
        }
    }
}
