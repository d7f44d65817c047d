/// How QEMU migrates: the capabilities and parameters set on both sides before a migration.
///
/// Defaults are for real measurements, not QEMU's: QEMU caps bandwidth at 128 MiB/s, which
/// alone would make an idle 512 MiB guest take seconds on a link that does it in ~0.3 s.
public struct MigrationSettings: Codable, Sendable, Equatable {
    /// Longest acceptable switchover pause (QEMU's `downtime-limit`), ms. The convergence
    /// ladder raises it when the guest dirties memory faster than the link drains it.
    public var downtimeLimitMs: Int64 = 300
    /// Bandwidth cap, bytes per second: effectively unlimited (10 GiB/s) by default.
    public var maxBandwidthBytesPerSecond: Int64 = 10 << 30
    /// Parallel streams (`multifd`), or nil for a single stream. Off by default: on one host
    /// with 2 cores a single stream is not CPU-bound by the socket, and the tunnelled data path
    /// would need one tunnel connection per channel.
    public var multifdChannels: Int?
    /// XBZRLE cache size in bytes, or nil to leave XBZRLE off (it costs source CPU and only pays
    /// for guests rewriting the same pages with small changes).
    public var xbzrleCacheBytes: Int64?
    /// Arm auto-converge at start, dormant (1% throttle ceiling), so the convergence ladder can
    /// turn it on mid-migration: QEMU refuses capability changes while a migration runs, but
    /// accepts throttle parameters.
    public var armAutoConverge: Bool = true
    /// Enable `postcopy-ram` on both sides so the ladder may switch to post-copy. Post-copy
    /// cannot be undone: if the link breaks afterwards, the guest is lost on both hosts.
    public var postcopyAllowed: Bool = false
    /// With `postcopyAllowed`: switch to post-copy after this many pre-copy passes instead of
    /// waiting for the convergence ladder (libvirt's "post-copy after pre-copy"). Nil: ladder only.
    public var postcopyAfterPasses: Int?
    /// Throttle applied when the ladder starts throttling, percent. Steeper than QEMU's 20/10:
    /// QEMU re-evaluates at most once per second and needs two bad periods per step, so 20/10
    /// takes ~16 s to reach 99%; the ladder only throttles a guest already known not to converge.
    public var throttleInitialPercent: Int = 30
    /// Throttle added per non-converging period pair, percent.
    public var throttleIncrementPercent: Int = 20
    /// Highest throttle, percent.
    public var throttleMaxPercent: Int = 99
    /// Copy-rate cap for local disks' mirrors while they run in background mode, bytes/s (nil:
    /// none), until they are synchronised (then lifted). A disk mirror that stops converging
    /// switches to write-blocking, uncapped.
    public var diskMirrorBackgroundBytesPerSecond: Int64?
    /// How long a local disk's background mirror may make no progress before it switches to
    /// write-blocking mode, ms (nil: `defaultDiskMirrorStallMs`).
    public var diskMirrorStallMs: Int64?
    /// 3 s: several of QEMU's mirror iterations, well under a migration's patience.
    public static let defaultDiskMirrorStallMs: Int64 = 3000
    /// Each local disk's mirror buffer (QEMU's `buf-size`), bytes: the most it has in flight,
    /// in up to 16 requests (nil: `DiskMirror.defaultBufferBytes`).
    public var diskMirrorBufferBytes: Int64?
    /// Self-announcement after switchover (RARP), QEMU defaults: the agent's virtual switch also
    /// announces, but QEMU's own announcement covers a guest with no traffic.
    public var announceInitialMs: Int64 = 50
    /// Longest gap between announcements, ms.
    public var announceMaxMs: Int64 = 550
    /// Number of announcements.
    public var announceRounds: Int64 = 5
    /// Gap increase per announcement, ms.
    public var announceStepMs: Int64 = 100

    /// The rate of the link the migration crosses, Mbit/s, as the operator configured it (nil:
    /// not given). Progress shows link use (throughput over this rate) beside the round trip
    /// (Protocol.md §7.3), and at distance the source sizes its stream's send buffers to twice
    /// the link's bandwidth-delay product instead of 1 Gbit/s's (§6.11); nothing is limited by it.
    public var linkMbit: Int64?
    /// `linkMbit` in bytes per second (nil: not given), clamped before the product: a rate past
    /// Int's range is no rate a buffer can follow.
    public var linkBytesPerSecond: Int? { linkMbit.map { Self.bytesPerSecond(mbit: $0) } }

    /// `mbit` Mbit/s in bytes per second, clamped to Int's range.
    public static func bytesPerSecond(mbit: Int64) -> Int { min(Int(clamping: mbit), Int.max / 125_000) * 125_000 }
    /// Secure channels one QEMU stream is striped across (Protocol.md §6.14): 2-16; 1: not
    /// striped; 0 or nil (the default): as many as the measured round trip calls for (1 on a
    /// LAN), except that nil with post-copy or multifd is 1.
    public var stripes: Int64?

    /// The defaults described on each property.
    public init() {}

    /// Capabilities, identical on source and destination (`multifd` and `postcopy-ram` must match).
    public var capabilities: [MigrationCapability: Bool] {
        [
            .events: true,
            .multifd: multifdChannels != nil,
            .xbzrle: xbzrleCacheBytes != nil,
            .autoConverge: armAutoConverge,
            .postcopyRAM: postcopyAllowed,
        ]
    }

    /// Parameters for the source at the start of a migration (throttle dormant).
    public var sourceParameters: MigrationParameterSet {
        var parameters = MigrationParameterSet(
            downtimeLimitMs: downtimeLimitMs, maxBandwidth: maxBandwidthBytesPerSecond,
            multifdChannels: multifdChannels, xbzrleCacheSize: xbzrleCacheBytes,
            announceInitial: announceInitialMs, announceMax: announceMaxMs,
            announceRounds: announceRounds, announceStep: announceStepMs)
        if armAutoConverge { parameters.merge(Self.dormantThrottle) }
        return parameters
    }

    /// Parameters for the destination (only what must match the source).
    public var destinationParameters: MigrationParameterSet {
        MigrationParameterSet(multifdChannels: multifdChannels,
                              announceInitial: announceInitialMs, announceMax: announceMaxMs,
                              announceRounds: announceRounds, announceStep: announceStepMs)
    }

    /// Parameters that turn the armed auto-converge into real throttling.
    public var activeThrottle: MigrationParameterSet {
        MigrationParameterSet(cpuThrottleInitial: throttleInitialPercent, cpuThrottleIncrement: throttleIncrementPercent,
                              maxCPUThrottle: throttleMaxPercent)
    }

    /// Auto-converge armed but capped at 1%: the smallest throttle QEMU accepts.
    static let dormantThrottle = MigrationParameterSet(cpuThrottleInitial: 1, cpuThrottleIncrement: 1, maxCPUThrottle: 1)
}

extension MigrationParameterSet {
    /// Takes every field `other` sets.
    mutating func merge(_ other: MigrationParameterSet) {
        downtimeLimitMs = other.downtimeLimitMs ?? downtimeLimitMs
        maxBandwidth = other.maxBandwidth ?? maxBandwidth
        multifdChannels = other.multifdChannels ?? multifdChannels
        xbzrleCacheSize = other.xbzrleCacheSize ?? xbzrleCacheSize
        cpuThrottleInitial = other.cpuThrottleInitial ?? cpuThrottleInitial
        cpuThrottleIncrement = other.cpuThrottleIncrement ?? cpuThrottleIncrement
        maxCPUThrottle = other.maxCPUThrottle ?? maxCPUThrottle
        announceInitial = other.announceInitial ?? announceInitial
        announceMax = other.announceMax ?? announceMax
        announceRounds = other.announceRounds ?? announceRounds
        announceStep = other.announceStep ?? announceStep
        tlsCreds = other.tlsCreds ?? tlsCreds
    }
}
