/// A point on one host's monotonic timeline, as signed nanoseconds from an origin the caller
/// picks (a shell's start, the event loop's uptime zero, a simulation's start).
///
/// Protocol cores have no clock: every event carries `now: MeshInstant`, and the shell or the
/// simulator decides what the origin is. Only differences between instants of one timeline
/// mean anything, so an instant never leaves the host (wire formats carry ages instead).
/// Arithmetic saturates at the ends of `Int64` (292 years either way) instead of trapping.
public struct MeshInstant: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the caller's origin (negative: before it).
    public var nanosecondsSinceOrigin: Int64

    /// The origin of the timeline.
    public static let origin = MeshInstant(nanosecondsSinceOrigin: 0)

    /// An instant `nanosecondsSinceOrigin` nanoseconds after the origin.
    public init(nanosecondsSinceOrigin: Int64) {
        self.nanosecondsSinceOrigin = nanosecondsSinceOrigin
    }

    /// An instant `offset` after the origin (truncated to whole nanoseconds, saturating).
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
        let fraction = String((millis % 1000).magnitude)
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }

    /// Orders instants on the timeline.
    public static func < (lhs: MeshInstant, rhs: MeshInstant) -> Bool {
        lhs.nanosecondsSinceOrigin < rhs.nanosecondsSinceOrigin
    }

    /// The instant `rhs` later (saturating).
    public static func + (lhs: MeshInstant, rhs: Duration) -> MeshInstant {
        MeshInstant(nanosecondsSinceOrigin: saturatingAdd(lhs.nanosecondsSinceOrigin, rhs.wholeNanoseconds))
    }

    /// The instant `rhs` earlier (saturating).
    public static func - (lhs: MeshInstant, rhs: Duration) -> MeshInstant {
        MeshInstant(nanosecondsSinceOrigin: saturatingSubtract(lhs.nanosecondsSinceOrigin, rhs.wholeNanoseconds))
    }

    /// The time from `rhs` to `lhs`: negative when `rhs` is later (saturating).
    public static func - (lhs: MeshInstant, rhs: MeshInstant) -> Duration {
        .nanoseconds(saturatingSubtract(lhs.nanosecondsSinceOrigin, rhs.nanosecondsSinceOrigin))
    }
}
