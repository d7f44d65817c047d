/// Per-host migration limits. Defaults as vMotion's: 4 concurrent migrations per host on a link
/// below 10 Gbit/s (or of unknown speed), 8 on a faster one.
public struct MigrationLimits: Sendable, Equatable {
    /// Concurrent outgoing migrations.
    public var outgoing = 4
    /// Concurrent incoming migrations.
    public var incoming = 4
    /// Of those, migrations with local disks (each creates and writes whole images here): as
    /// vSphere's 2 for migrations without shared storage until more is measured harmless.
    public var incomingWithDisks = 2
    /// Memory kept free for the host itself, MiB.
    public var hostReserveMiB = 256
    /// Limits with defaults.
    public init() {}

    /// Defaults for a link of `megabits` per second (nil: unknown), overridden where given.
    public init(linkMegabits megabits: Int?, incoming: Int? = nil, outgoing: Int? = nil) {
        let byLink = (megabits ?? 0) >= 10_000 ? 8 : 4
        self.incoming = incoming ?? byLink
        self.outgoing = outgoing ?? byLink
    }
}
