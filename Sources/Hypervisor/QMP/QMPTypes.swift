/// A QEMU run state as reported by `query-status` (`RunState` in QEMU's QAPI schema).
/// Open-ended: states this code does not name still decode.
public struct RunState: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    /// QEMU's name for the state.
    public var rawValue: String
    /// Wraps a QEMU state name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// vCPUs are running.
    public static let running = RunState(rawValue: "running")
    /// Stopped by `stop` (or never started: see `prelaunch`).
    public static let paused = RunState(rawValue: "paused")
    /// Started with `-S`, waiting for `cont`.
    public static let prelaunch = RunState(rawValue: "prelaunch")
    /// Waiting for an incoming migration (`-incoming`).
    public static let inmigrate = RunState(rawValue: "inmigrate")
    /// Source side after a completed outgoing migration: the guest now lives elsewhere.
    public static let postmigrate = RunState(rawValue: "postmigrate")
    /// Source side during the final stop-and-copy.
    public static let finishMigrate = RunState(rawValue: "finish-migrate")
    /// The guest shut down and QEMU was told not to exit (`-no-shutdown`).
    public static let shutdown = RunState(rawValue: "shutdown")
    /// The guest kernel panicked.
    public static let guestPanicked = RunState(rawValue: "guest-panicked")
    /// QEMU hit an internal error (e.g. KVM emulation failure).
    public static let internalError = RunState(rawValue: "internal-error")
    /// A disk I/O error paused the guest.
    public static let ioError = RunState(rawValue: "io-error")

    public var description: String { rawValue }
}

/// Result of `query-status`.
public struct VMRunStatus: Codable, Sendable, Equatable {
    /// True when vCPUs are executing.
    public var running: Bool
    /// The precise state.
    public var status: RunState

    /// A status (tests and fakes).
    public init(running: Bool, status: RunState) {
        self.running = running
        self.status = status
    }
}

/// Result of `query-kvm`.
public struct KVMInfo: Codable, Sendable, Equatable {
    /// KVM is in use by this QEMU.
    public var enabled: Bool
    /// KVM is available on the host (whether or not it is used).
    public var present: Bool
}

/// A migration capability name (`MigrationCapability` in QEMU's QAPI schema). Open-ended.
public struct MigrationCapability: RawRepresentable, Codable, Hashable, Sendable, CustomStringConvertible {
    /// QEMU's name for the capability.
    public var rawValue: String
    /// Wraps a QEMU capability name.
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Emit MIGRATION / MIGRATION_PASS events.
    public static let events = MigrationCapability(rawValue: "events")
    /// Throttle vCPUs when dirtying outruns the transfer (see `MigrationSettings`).
    public static let autoConverge = MigrationCapability(rawValue: "auto-converge")
    /// Allow switching to post-copy with `migrate-start-postcopy`. Set on both sides.
    public static let postcopyRAM = MigrationCapability(rawValue: "postcopy-ram")
    /// Several parallel streams (`multifd-channels`). Set on both sides.
    public static let multifd = MigrationCapability(rawValue: "multifd")
    /// Delta compression of re-sent pages (uses `xbzrle-cache-size`).
    public static let xbzrle = MigrationCapability(rawValue: "xbzrle")
    /// Skip zero pages of block devices.
    public static let zeroBlocks = MigrationCapability(rawValue: "zero-blocks")
    /// Pause before switchover until `migrate-continue` (for the agents' disk/port handover).
    public static let pauseBeforeSwitchover = MigrationCapability(rawValue: "pause-before-switchover")

    public var description: String { rawValue }
}

/// Arguments and result of `migrate-set-parameters` / `query-migrate-parameters`, restricted to the
/// parameters this project sets. Nil fields are left unchanged (and omitted from the command).
public struct MigrationParameterSet: Codable, Sendable, Equatable {
    /// Longest acceptable pause at switchover, milliseconds (QEMU default 300).
    public var downtimeLimitMs: Int64?
    /// Bandwidth cap in bytes per second (QEMU default 128 MiB/s).
    public var maxBandwidth: Int64?
    /// Parallel streams when the `multifd` capability is on (QEMU default 2).
    public var multifdChannels: Int?
    /// XBZRLE cache size in bytes (QEMU default 64 MiB).
    public var xbzrleCacheSize: Int64?
    /// First throttle applied by auto-converge, percent (1-99).
    public var cpuThrottleInitial: Int?
    /// Throttle added per pass that still does not converge, percent (1-99).
    public var cpuThrottleIncrement: Int?
    /// Upper bound of the throttle, percent (1-99).
    public var maxCPUThrottle: Int?
    /// Delay before the first self-announcement (RARP) after switchover, ms.
    public var announceInitial: Int64?
    /// Longest delay between announcements, ms.
    public var announceMax: Int64?
    /// Number of announcements.
    public var announceRounds: Int64?
    /// Delay increase per announcement, ms.
    public var announceStep: Int64?
    /// QOM id of the TLS credentials object that secures the stream; "" turns TLS off.
    public var tlsCreds: String?
    /// The bandwidth QEMU assumes for the switchover, bytes per second, in place of its own
    /// estimate (what it wrote in the last 100 ms); 0 is its own estimate again. QEMU 8.2 and later.
    public var availSwitchoverBandwidth: Int64?

    /// A parameter set that changes nothing until fields are set.
    public init(downtimeLimitMs: Int64? = nil, maxBandwidth: Int64? = nil, multifdChannels: Int? = nil,
                xbzrleCacheSize: Int64? = nil, cpuThrottleInitial: Int? = nil, cpuThrottleIncrement: Int? = nil,
                maxCPUThrottle: Int? = nil, announceInitial: Int64? = nil, announceMax: Int64? = nil,
                announceRounds: Int64? = nil, announceStep: Int64? = nil, tlsCreds: String? = nil,
                availSwitchoverBandwidth: Int64? = nil) {
        self.downtimeLimitMs = downtimeLimitMs
        self.maxBandwidth = maxBandwidth
        self.multifdChannels = multifdChannels
        self.xbzrleCacheSize = xbzrleCacheSize
        self.cpuThrottleInitial = cpuThrottleInitial
        self.cpuThrottleIncrement = cpuThrottleIncrement
        self.maxCPUThrottle = maxCPUThrottle
        self.announceInitial = announceInitial
        self.announceMax = announceMax
        self.announceRounds = announceRounds
        self.announceStep = announceStep
        self.tlsCreds = tlsCreds
        self.availSwitchoverBandwidth = availSwitchoverBandwidth
    }

    enum CodingKeys: String, CodingKey {
        case downtimeLimitMs = "downtime-limit"
        case maxBandwidth = "max-bandwidth"
        case multifdChannels = "multifd-channels"
        case xbzrleCacheSize = "xbzrle-cache-size"
        case cpuThrottleInitial = "cpu-throttle-initial"
        case cpuThrottleIncrement = "cpu-throttle-increment"
        case maxCPUThrottle = "max-cpu-throttle"
        case announceInitial = "announce-initial"
        case announceMax = "announce-max"
        case announceRounds = "announce-rounds"
        case announceStep = "announce-step"
        case tlsCreds = "tls-creds"
        case availSwitchoverBandwidth = "avail-switchover-bandwidth"
    }
}
