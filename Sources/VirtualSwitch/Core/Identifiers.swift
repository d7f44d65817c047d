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

/// A point on the caller's monotonic timeline, in nanoseconds from an arbitrary origin.
///
/// The switch core has no clock: every event carries `now`. The shell passes the event loop's
/// uptime; tests pass virtual time. Only differences between instants matter, so an instant
/// never leaves the host (exported state carries ages instead).
public struct SwitchInstant: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Nanoseconds since the caller's origin.
    public var nanoseconds: UInt64

    /// The origin.
    public static let origin = SwitchInstant(nanoseconds: 0)

    /// An instant `nanoseconds` after the origin.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// An instant `offset` after the origin (negative offsets clamp to the origin).
    public init(sinceOrigin offset: Duration) { self.nanoseconds = UInt64(max(0, offset.nanosecondsClamped)) }

    /// Seconds since the origin with millisecond precision.
    public var description: String { "\(nanoseconds / 1_000_000_000).\(threeDigits(nanoseconds / 1_000_000 % 1000))s" }

    /// Orders instants.
    public static func < (lhs: SwitchInstant, rhs: SwitchInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The instant `offset` later (saturating).
    public static func + (lhs: SwitchInstant, rhs: Duration) -> SwitchInstant {
        let delta = rhs.nanosecondsClamped
        if delta >= 0 {
            let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(UInt64(delta))
            return SwitchInstant(nanoseconds: overflow ? .max : sum)
        }
        return SwitchInstant(nanoseconds: lhs.nanoseconds > UInt64(-delta) ? lhs.nanoseconds - UInt64(-delta) : 0)
    }

    /// The time from `rhs` to `lhs` (zero if `rhs` is later).
    public static func - (lhs: SwitchInstant, rhs: SwitchInstant) -> Duration {
        lhs > rhs ? .nanoseconds(Int64(clamping: lhs.nanoseconds - rhs.nanoseconds)) : .zero
    }

    /// Milliseconds from `earlier` to this instant (zero if `earlier` is later).
    func milliseconds(since earlier: SwitchInstant) -> UInt64 {
        nanoseconds > earlier.nanoseconds ? (nanoseconds - earlier.nanoseconds) / 1_000_000 : 0
    }

    /// The instant `milliseconds` before this one (clamped at the origin).
    func minus(milliseconds: UInt64) -> SwitchInstant {
        let (delta, overflow) = milliseconds.multipliedReportingOverflow(by: 1_000_000)
        return SwitchInstant(nanoseconds: overflow || delta > nanoseconds ? 0 : nanoseconds - delta)
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to `Int64`.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingReportingOverflow(attoseconds / 1_000_000_000).overflow ? .max : scaled + attoseconds / 1_000_000_000
    }
}

/// A number padded to three digits.
func threeDigits(_ value: UInt64) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, 3 - digits.count)) + digits
}
