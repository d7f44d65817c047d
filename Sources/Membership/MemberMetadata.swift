/// Capacity and state of a host, gossiped with its membership (Protocol.md §4.4).
///
/// Owned by the host it describes: only the owner changes it, and every change MUST carry a
/// higher `version`. Receivers keep the copy with the highest version ("newer wins"), so
/// updates may arrive in any order and through any path.
public struct MemberMetadata: Hashable, Sendable, CustomStringConvertible {
    /// How the host rates itself.
    public enum Health: String, Hashable, Sendable, CaseIterable {
        /// Fully able to run and receive VMs.
        case ok
        /// Working, but placement SHOULD avoid it and balancing SHOULD drain it.
        case degraded
        /// Not able to take work; placement MUST avoid it.
        case unhealthy
    }

    /// The field values, kept in an immutable shared box: every member holds a copy of every
    /// other member's metadata (and the simulator holds a thousand members' views at once), so a
    /// copy is one reference instead of ~130 bytes. Setters replace the box.
    struct Fields: Hashable, Sendable {
        var version: UInt64
        var domain: String
        var cores: UInt32
        var memoryTotalBytes: UInt64
        var memoryFreeBytes: UInt64
        var runningVMs: UInt32
        var cpuLoadMilli: UInt32
        var migrationsInFlight: UInt32
        var health: Health
        var maintenance: Bool
        var channelAddress: PeerAddress?
        var controlAddress: PeerAddress?
        var keyFingerprint: [UInt8]
        var instanceID: [UInt8]
        var healthReasons: [String]
        var gossipKeyIDs: [UInt32] = []
        var gossipPrimaryKeyID: UInt32 = 0
        var gossipKeyringVersion: UInt64 = 0
        var signature: [UInt8] = []
    }

    /// Immutable after creation (`let` only), hence safely shared across threads.
    final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    private var storage: Storage

    private mutating func update(_ change: (inout Fields) -> Void) {
        var fields = storage.fields
        change(&fields)
        storage = Storage(fields)
    }

    /// Bumped by the owner on every change; the highest version wins everywhere.
    public var version: UInt64 {
        get { storage.fields.version }
        set { update { $0.version = newValue } }
    }
    /// Administrative domain of the host.
    public var domain: String {
        get { storage.fields.domain }
        set { update { $0.domain = newValue } }
    }
    /// Logical CPUs available to VMs.
    public var cores: UInt32 {
        get { storage.fields.cores }
        set { update { $0.cores = newValue } }
    }
    /// Memory available to VMs in total, in bytes.
    public var memoryTotalBytes: UInt64 {
        get { storage.fields.memoryTotalBytes }
        set { update { $0.memoryTotalBytes = newValue } }
    }
    /// Memory not yet committed to VMs, in bytes.
    public var memoryFreeBytes: UInt64 {
        get { storage.fields.memoryFreeBytes }
        set { update { $0.memoryFreeBytes = newValue } }
    }
    /// VMs currently running on the host.
    public var runningVMs: UInt32 {
        get { storage.fields.runningVMs }
        set { update { $0.runningVMs = newValue } }
    }
    /// CPU load times 1000: 0 is idle, 1000 is every core busy (may exceed 1000 when overloaded).
    public var cpuLoadMilli: UInt32 {
        get { storage.fields.cpuLoadMilli }
        set { update { $0.cpuLoadMilli = newValue } }
    }
    /// Migrations (in or out) currently in progress on the host.
    public var migrationsInFlight: UInt32 {
        get { storage.fields.migrationsInFlight }
        set { update { $0.migrationsInFlight = newValue } }
    }
    /// Self-reported health.
    public var health: Health {
        get { storage.fields.health }
        set { update { $0.health = newValue } }
    }
    /// True while the host is in maintenance: it takes no new VMs and is being evacuated.
    public var maintenance: Bool {
        get { storage.fields.maintenance }
        set { update { $0.maintenance = newValue } }
    }
    /// Endpoint of the host's secure channel (TCP), used for push-pull, control and migration.
    public var channelAddress: PeerAddress? {
        get { storage.fields.channelAddress }
        set { update { $0.channelAddress = newValue } }
    }
    /// Endpoint of the host's control API.
    public var controlAddress: PeerAddress? {
        get { storage.fields.controlAddress }
        set { update { $0.controlAddress = newValue } }
    }
    /// Fingerprint of the host's current identity key (changes on key rotation).
    public var keyFingerprint: [UInt8] {
        get { storage.fields.keyFingerprint }
        set { update { $0.keyFingerprint = newValue } }
    }

    /// Why the host is not healthy, worst first (Protocol.md §11.1); empty when healthy. At
    /// most `maxHealthReasons` of at most `maxHealthReasonBytes` each (longer ones are refused
    /// on receipt, so the owner trims them).
    public var healthReasons: [String] {
        get { storage.fields.healthReasons }
        set { update { $0.healthReasons = newValue } }
    }
    /// The owner's Ed25519 signature of this version (Protocol.md §4.16): set by the owner's core
    /// when it issues the version and kept with it on every copy; empty when unsigned. Not part
    /// of what it signs (`MembershipClaim.metadata`).
    public var signature: [UInt8] {
        get { storage.fields.signature }
        set { update { $0.signature = newValue } }
    }

    /// The ids of the gossip keys the host holds (Protocol.md §4.17), at most `maxGossipKeys`.
    public var gossipKeyIDs: [UInt32] {
        get { storage.fields.gossipKeyIDs }
        set { update { $0.gossipKeyIDs = newValue } }
    }
    /// The id of the gossip key the host seals with (0: not announced).
    public var gossipPrimaryKeyID: UInt32 {
        get { storage.fields.gossipPrimaryKeyID }
        set { update { $0.gossipPrimaryKeyID = newValue } }
    }
    /// The version of the signed gossip keyring record the host holds (0: none).
    public var gossipKeyringVersion: UInt64 {
        get { storage.fields.gossipKeyringVersion }
        set { update { $0.gossipKeyringVersion = newValue } }
    }
    /// Gossip key ids a member may announce.
    public static let maxGossipKeys = 16

    /// Reasons a member may gossip.
    public static let maxHealthReasons = 4
    /// Bytes (UTF-8) of one reason.
    public static let maxHealthReasonBytes = 120

    /// Random bytes chosen at every start of the host's agent: a member whose instance changed
    /// restarted, even if no one saw it dead (its peers must greet it again).
    public var instanceID: [UInt8] {
        get { storage.fields.instanceID }
        set { update { $0.instanceID = newValue } }
    }

    /// Creates metadata; every field defaults to "empty host, healthy".
    public init(
        version: UInt64 = 0, domain: String = "", cores: UInt32 = 0, memoryTotalBytes: UInt64 = 0,
        memoryFreeBytes: UInt64 = 0, runningVMs: UInt32 = 0, cpuLoadMilli: UInt32 = 0,
        migrationsInFlight: UInt32 = 0, health: Health = .ok, maintenance: Bool = false,
        channelAddress: PeerAddress? = nil, controlAddress: PeerAddress? = nil, keyFingerprint: [UInt8] = [],
        instanceID: [UInt8] = [], healthReasons: [String] = []
    ) {
        storage = Storage(
            Fields(
                version: version,
                domain: domain,
                cores: cores,
                memoryTotalBytes: memoryTotalBytes,
                memoryFreeBytes: memoryFreeBytes,
                runningVMs: runningVMs,
                cpuLoadMilli: cpuLoadMilli,
                migrationsInFlight: migrationsInFlight,
                health: health,
                maintenance: maintenance,
                channelAddress: channelAddress,
                controlAddress: controlAddress,
                keyFingerprint: keyFingerprint,
                instanceID: instanceID,
                healthReasons: healthReasons))
    }

    /// CPU load as a fraction of all cores (1.0 = saturated).
    public var cpuLoad: Double { Double(cpuLoadMilli) / 1000 }

    /// Equal when every field is equal.
    public static func == (lhs: MemberMetadata, rhs: MemberMetadata) -> Bool {
        lhs.storage === rhs.storage || lhs.storage.fields == rhs.storage.fields
    }

    /// Every field, for logs and test failures.
    public var description: String {
        let fields = String(describing: storage.fields)
        guard let open = fields.firstIndex(of: "(") else { return fields }
        return "MemberMetadata" + fields[open...]
    }

    /// Hashes every field.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.fields)
    }

    /// True if `self` should replace `other` (strictly newer version, or `other` is absent).
    public func supersedes(_ other: MemberMetadata?) -> Bool {
        guard let other else { return true }
        return version > other.version
    }
}
