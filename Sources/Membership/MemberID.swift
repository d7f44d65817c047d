/// Identity of a mesh member: the host id from its certificate, unique in the mesh.
///
/// Every membership message names members by this id; addresses can change (a member that
/// restarts elsewhere re-announces itself with a higher incarnation), the id does not.
public struct MemberID: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The host id, e.g. `"rack3-node07"`. Non-empty.
    public let hostID: String

    /// Wraps a host id. The id MUST be non-empty; the codec rejects empty ids on the wire.
    public init(_ hostID: String) {
        self.hostID = hostID
    }

    /// Allows `let id: MemberID = "node-1"` in tests and fixtures.
    public init(stringLiteral value: String) {
        self.hostID = value
    }

    /// The host id.
    public var description: String { hostID }

    /// Orders ids by host id, for stable listings.
    public static func < (lhs: MemberID, rhs: MemberID) -> Bool { lhs.hostID < rhs.hostID }
}

/// A network endpoint: host (IP literal or DNS name) and port.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// IP literal or DNS name.
    public var host: String
    /// Port number, 1...65535.
    public var port: UInt16

    /// Creates an endpoint.
    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around IPv6 literals.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
