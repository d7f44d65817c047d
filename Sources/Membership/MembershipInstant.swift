/// A point on the caller's monotonic timeline, as an offset from an arbitrary origin.
///
/// The membership core has no clock: every event carries `now`. A real shell passes
/// `ContinuousClock.now - start`; the simulator passes its virtual time. Only differences
/// between instants matter. Stored as whole nanoseconds so that comparisons are cheap.
public struct MembershipInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the caller's origin.
    public var nanosecondsSinceOrigin: Int64

    /// The origin of the timeline.
    public static let origin = MembershipInstant(nanosecondsSinceOrigin: 0)

    /// An instant `nanosecondsSinceOrigin` nanoseconds after the origin.
    public init(nanosecondsSinceOrigin: Int64) {
        self.nanosecondsSinceOrigin = nanosecondsSinceOrigin
    }

    /// An instant `offset` after the origin (truncated to whole nanoseconds).
    public init(sinceOrigin offset: Duration) {
        self.nanosecondsSinceOrigin = offset.wholeNanoseconds
    }

    /// The offset of this instant from the origin.
    public var sinceOrigin: Duration { .nanoseconds(nanosecondsSinceOrigin) }

    /// Seconds since the origin, for reports.
    public var seconds: Double { Double(nanosecondsSinceOrigin) / 1e9 }

    /// Seconds since the origin with millisecond precision, e.g. `12.345s`.
    public var description: String {
        let millis = nanosecondsSinceOrigin / 1_000_000
        let fraction = String(abs(millis % 1000))
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }

    /// Orders instants on the timeline.
    public static func < (lhs: MembershipInstant, rhs: MembershipInstant) -> Bool {
        lhs.nanosecondsSinceOrigin < rhs.nanosecondsSinceOrigin
    }

    /// The instant `offset` later.
    public static func + (lhs: MembershipInstant, rhs: Duration) -> MembershipInstant {
        MembershipInstant(nanosecondsSinceOrigin: lhs.nanosecondsSinceOrigin + rhs.wholeNanoseconds)
    }

    /// The instant `offset` earlier.
    public static func - (lhs: MembershipInstant, rhs: Duration) -> MembershipInstant {
        MembershipInstant(nanosecondsSinceOrigin: lhs.nanosecondsSinceOrigin - rhs.wholeNanoseconds)
    }

    /// The time from `rhs` to `lhs`.
    public static func - (lhs: MembershipInstant, rhs: MembershipInstant) -> Duration {
        .nanoseconds(lhs.nanosecondsSinceOrigin - rhs.nanosecondsSinceOrigin)
    }
}

extension Duration {
    /// This duration in whole nanoseconds (truncated toward zero).
    var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
