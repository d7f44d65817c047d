import MeshTime

/// A host of the mesh, by its host id (the same id as in its certificate and in gossip).
public struct HostID: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The host id text.
    public let rawValue: String

    /// A host id.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A host id from a literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The host id text.
    public var description: String { rawValue }

    /// Orders by the id text (used to break mobility-sequence ties the same way on every host).
    public static func < (lhs: HostID, rhs: HostID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A switch port: one VM NIC. The agent names it (e.g. `<vm id>/<nic id>`); the id is kept
/// across migrations so both ends talk about the same port.
public struct PortID: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The port id text.
    public let rawValue: String

    /// A port id.
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// A port id from a literal.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The port id text.
    public var description: String { rawValue }

    /// Orders by the id text.
    public static func < (lhs: PortID, rhs: PortID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A network's segment id: 24 bits, carried in every overlay frame (like a VXLAN VNI).
public struct SegmentID: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    /// Valid segment ids. 0 is reserved for overlay control datagrams.
    public static let validRange: ClosedRange<UInt32> = 1...0xFF_FFFF

    /// The segment number.
    public let rawValue: UInt32

    /// A segment id (validated where networks are added).
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    /// A segment id from a literal.
    public init(integerLiteral value: UInt32) { self.rawValue = value }

    /// True when within `validRange`.
    public var isValid: Bool { Self.validRange.contains(rawValue) }

    /// The segment number.
    public var description: String { String(rawValue) }

    /// Orders numerically.
    public static func < (lhs: SegmentID, rhs: SegmentID) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension MeshInstant {
    // The switch's timeline is the event loop's uptime, so its instants are never before the
    // origin; exported state carries ages, clamped so that they are never negative.

    /// Whole milliseconds from `earlier` to this instant (zero if `earlier` is later).
    func milliseconds(since earlier: MeshInstant) -> UInt64 {
        UInt64(clamping: max(0, (self - earlier).wholeMilliseconds))
    }

    /// The instant `milliseconds` before this one, clamped at the origin (an imported age
    /// older than this host's uptime).
    func minus(milliseconds: UInt64) -> MeshInstant {
        let (delta, overflow) = Int64(clamping: milliseconds).multipliedReportingOverflow(by: 1_000_000)
        return MeshInstant(nanosecondsSinceOrigin: overflow || delta > nanosecondsSinceOrigin ? 0 : nanosecondsSinceOrigin - delta)
    }
}
