/// Per-host migration limits. Defaults as vMotion's: 4 concurrent migrations per host on a link
/// below 10 Gbit/s (or of unknown speed), 8 on a faster one.
public struct MigrationLimits: Sendable, Equatable {
    /// Concurrent outgoing migrations.
    public var outgoing = 4
    /// Concurrent incoming migrations.
    public var incoming = 4
    /// Of those, migrations with local disks (each creates and writes whole images here): 4,
    /// measured harmless (ConcurrentDiskMigrationTests moves 4 at once), never above `incoming`.
    /// vSphere allows 2 for migrations without shared storage.
    public var incomingWithDisks = 4
    /// Of the outgoing migrations, those with local disks (each mirrors whole images from this
    /// host's storage): 4, never above `outgoing`. Beyond it they queue like any migration beyond
    /// `outgoing`; migrations without local disks behind them in the queue are not held up.
    public var outgoingWithDisks = 4
    /// Memory kept free for the host itself, MiB.
    public var hostReserveMiB = 256
    /// Limits with defaults.
    public init() {}

    /// Defaults for a link of `megabits` per second (nil: unknown), overridden where given.
    /// `incomingWithDisks` (`outgoingWithDisks`) is the given figure or 4, never above the incoming
    /// (outgoing) limit.
    public init(linkMegabits megabits: Int?, incoming: Int? = nil, outgoing: Int? = nil, incomingWithDisks: Int? = nil,
                outgoingWithDisks: Int? = nil) {
        let byLink = (megabits ?? 0) >= 10_000 ? 8 : 4
        self.incoming = incoming ?? byLink
        self.outgoing = outgoing ?? byLink
        self.incomingWithDisks = min(incomingWithDisks ?? Self.defaultIncomingWithDisks, self.incoming)
        self.outgoingWithDisks = min(outgoingWithDisks ?? Self.defaultOutgoingWithDisks, self.outgoing)
    }

    /// The default limit of incoming migrations with local disks.
    public static let defaultIncomingWithDisks = 4
    /// The default limit of outgoing migrations with local disks.
    public static let defaultOutgoingWithDisks = 4
}
