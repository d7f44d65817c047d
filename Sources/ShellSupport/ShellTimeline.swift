public import MeshTime
public import NIOCore

/// Maps a shell's event-loop clock (`NIODeadline`, the host's monotonic uptime) onto the
/// `MeshInstant` timeline its core runs on, and back for scheduling the core's timers.
///
/// The origin is the shell's choice: the membership shell starts its timeline when it is
/// created (instants in logs read as "seconds since start"); the switch uses uptime zero.
public struct ShellTimeline: Sendable {
    /// The uptime that is `MeshInstant.origin`.
    public let origin: NIODeadline

    /// A timeline whose origin is `origin` (default: uptime zero).
    public init(origin: NIODeadline = .uptimeNanoseconds(0)) {
        self.origin = origin
    }

    /// A timeline that starts now.
    public static func startingNow() -> ShellTimeline {
        ShellTimeline(origin: .now())
    }

    /// The current instant.
    public func now() -> MeshInstant {
        instant(at: .now())
    }

    /// The instant of `deadline` (negative if it is before the origin).
    public func instant(at deadline: NIODeadline) -> MeshInstant {
        MeshInstant(sinceOrigin: .nanoseconds((deadline - origin).nanoseconds))
    }

    /// The loop deadline of `instant`; an instant before the origin is due at the origin.
    public func deadline(at instant: MeshInstant) -> NIODeadline {
        origin + .nanoseconds(max(0, instant.nanosecondsSinceOrigin))
    }
}
