/// Capacity and state of a host, gossiped with its membership (Protocol.md §4.4).
///
/// Owned by the host it describes: only the owner changes it, and every change MUST carry a
/// higher `version`. Receivers keep the copy with the highest version ("newer wins"), so
/// updates may arrive in any order and through any path.
public struct MemberMetadata: Hashable, Sendable {
    /// How the host rates itself.
    public enum Health: String, Hashable, Sendable, CaseIterable {
        /// Fully able to run and receive VMs.
        case ok
        /// Working, but placement SHOULD avoid it and balancing SHOULD drain it.
        case degraded
        /// Not able to take work; placement MUST avoid it.
        case unhealthy
    }

    /// Bumped by the owner on every change; the highest version wins everywhere.
    public var version: UInt64
    /// Administrative domain of the host.
    public var domain: String
    /// Logical CPUs available to VMs.
    public var cores: UInt32
    /// Memory available to VMs in total, in bytes.
    public var memoryTotalBytes: UInt64
    /// Memory not yet committed to VMs, in bytes.
    public var memoryFreeBytes: UInt64
    /// VMs currently running on the host.
    public var runningVMs: UInt32
    /// CPU load times 1000: 0 is idle, 1000 is every core busy (may exceed 1000 when overloaded).
    public var cpuLoadMilli: UInt32
    /// Migrations (in or out) currently in progress on the host.
    public var migrationsInFlight: UInt32
    /// Self-reported health.
    public var health: Health
    /// True while the host is in maintenance: it takes no new VMs and is being evacuated.
    public var maintenance: Bool
    /// Endpoint of the host's secure channel (TCP), used for push-pull, control and migration.
    public var channelAddress: PeerAddress?
    /// Endpoint of the host's control API.
    public var controlAddress: PeerAddress?
    /// Fingerprint of the host's current identity key (changes on key rotation).
    public var keyFingerprint: [UInt8]

    /// Creates metadata; every field defaults to "empty host, healthy".
    public init(
        version: UInt64 = 0, domain: String = "", cores: UInt32 = 0, memoryTotalBytes: UInt64 = 0,
        memoryFreeBytes: UInt64 = 0, runningVMs: UInt32 = 0, cpuLoadMilli: UInt32 = 0,
        migrationsInFlight: UInt32 = 0, health: Health = .ok, maintenance: Bool = false,
        channelAddress: PeerAddress? = nil, controlAddress: PeerAddress? = nil, keyFingerprint: [UInt8] = []
    ) {
        self.version = version
        self.domain = domain
        self.cores = cores
        self.memoryTotalBytes = memoryTotalBytes
        self.memoryFreeBytes = memoryFreeBytes
        self.runningVMs = runningVMs
        self.cpuLoadMilli = cpuLoadMilli
        self.migrationsInFlight = migrationsInFlight
        self.health = health
        self.maintenance = maintenance
        self.channelAddress = channelAddress
        self.controlAddress = controlAddress
        self.keyFingerprint = keyFingerprint
    }

    /// CPU load as a fraction of all cores (1.0 = saturated).
    public var cpuLoad: Double { Double(cpuLoadMilli) / 1000 }

    /// True if `self` should replace `other` (strictly newer version, or `other` is absent).
    public func supersedes(_ other: MemberMetadata?) -> Bool {
        guard let other else { return true }
        return version > other.version
    }
}
