/// A VM as placement sees it: where it runs and what it demands (measured by its owner and
/// reported with its host's DRS load record, Protocol.md §10.2).
public struct PlacementVM: Sendable, Hashable {
    /// VM id (a UUID).
    public var id: String
    /// VM name (what rules name; unique on a host, and by convention in the mesh).
    public var name: String
    /// The host that runs it (its owner).
    public var host: String
    /// CPU demand in thousandths of a core: time its vCPUs ran plus time they waited to run,
    /// per second of wall time, averaged by the owner.
    public var cpuDemandMilli: Int
    /// The VM's configured RAM in MiB: what a host must have room for to take it.
    public var memoryMiB: Int
    /// Memory the guest actually uses, MiB (nil: not measured; the configured RAM is taken).
    /// Its entitlement, not `memoryMiB`, weighs in the host's load (Protocol.md §10.9).
    public var memoryDemandMiB: Int?
    /// Whether balancing may move it now. False while it is held after a move (cool-down),
    /// migrating, or not running. Mandatory moves (maintenance, broken "must" rules) ignore the
    /// hold but not migrating.
    public var movable: Bool
    /// False while it migrates or is otherwise busy: nothing may move it.
    public var busy: Bool
    /// Paused in place by an operator (`vm pause`): nothing may move it (its destination would
    /// run it), and a mandatory move reports it unplaced instead of waiting for it as for a busy one.
    public var paused: Bool
    /// Its resource pool (nil: none).
    public var pool: String?
    /// Its own CPU (thousandths of a core) and memory (MiB) reservation, limit and shares.
    public var cpu: ResourceAllocation
    public var memory: ResourceAllocation
    /// Its own DRS automation level and migration threshold (nil: the mesh's), as vSphere's
    /// per-VM overrides (Protocol.md §10.9).
    public var automation: DRSSettings.Automation?
    public var threshold: Int?

    public init(id: String, name: String, host: String, cpuDemandMilli: Int, memoryMiB: Int, movable: Bool = true, busy: Bool = false,
                paused: Bool = false, memoryDemandMiB: Int? = nil, pool: String? = nil, cpu: ResourceAllocation = .unreserved, memory: ResourceAllocation = .unreserved,
                automation: DRSSettings.Automation? = nil, threshold: Int? = nil) {
        self.id = id
        self.name = name
        self.host = host
        self.cpuDemandMilli = cpuDemandMilli
        self.memoryMiB = memoryMiB
        self.movable = movable
        self.busy = busy
        self.paused = paused
        self.memoryDemandMiB = memoryDemandMiB
        self.pool = pool
        self.cpu = cpu
        self.memory = memory
        self.automation = automation
        self.threshold = threshold
    }

    /// Its memory claim: the used memory (or the configured RAM), its limit at most the RAM.
    var memoryClaim: Entitlements.Claim {
        var allocation = memory
        allocation.limit = min(allocation.limit ?? memoryMiB, memoryMiB)
        allocation.reservation = min(allocation.reservation, memoryMiB)
        return Entitlements.Claim(demand: min(memoryDemandMiB ?? memoryMiB, memoryMiB), allocation: allocation)
    }
}
