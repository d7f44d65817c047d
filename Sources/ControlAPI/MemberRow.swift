/// One line of `hostmesh members`: a member as this host's gossip sees it (Protocol.md §4).
public struct MemberRow: Codable, Sendable {
    /// Host id.
    public var host: String
    /// Domain; empty until the member's metadata arrived.
    public var domain: String
    /// Gossip address, host:port.
    public var address: String
    /// alive, suspect, dead, left.
    public var status: String
    /// Incarnation number (the member raises it to refute suspicion).
    public var incarnation: UInt64
    /// Cores; 0 until the member's metadata arrived.
    public var cores: UInt32
    /// Free memory, MiB.
    public var memoryFreeMiB: UInt64
    /// Running VMs.
    public var vms: UInt32
    /// CPU load (1.0 = all cores busy).
    public var load: Double
    /// Migrations in flight.
    public var migrations: UInt32
    /// Seconds since this host heard about the member.
    public var lastUpdateSeconds: Double
    /// The member's secure-channel address, host:port; nil until its metadata arrived.
    public var channel: String?
    /// True for this host.
    public var local: Bool

    /// The fields as named.
    public init(host: String, domain: String, address: String, status: String, incarnation: UInt64, cores: UInt32,
                memoryFreeMiB: UInt64, vms: UInt32, load: Double, migrations: UInt32, lastUpdateSeconds: Double,
                channel: String? = nil, local: Bool) {
        self.host = host
        self.domain = domain
        self.address = address
        self.status = status
        self.incarnation = incarnation
        self.cores = cores
        self.memoryFreeMiB = memoryFreeMiB
        self.vms = vms
        self.load = load
        self.migrations = migrations
        self.lastUpdateSeconds = lastUpdateSeconds
        self.channel = channel
        self.local = local
    }
}
