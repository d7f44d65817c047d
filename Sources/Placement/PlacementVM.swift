/// A VM as placement sees it: where it runs and what it demands (measured by its owner and
/// reported with its host's DRS load record, Protocol.md §12.2).
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
    /// Memory entitlement in MiB (the VM's configured RAM).
    public var memoryMiB: Int
    /// Whether balancing may move it now. False while it is held after a move (cool-down),
    /// migrating, or not running. Mandatory moves (maintenance, broken "must" rules) ignore the
    /// hold but not migrating.
    public var movable: Bool
    /// False while it migrates or is otherwise busy: nothing may move it.
    public var busy: Bool

    public init(id: String, name: String, host: String, cpuDemandMilli: Int, memoryMiB: Int, movable: Bool = true, busy: Bool = false) {
        self.id = id
        self.name = name
        self.host = host
        self.cpuDemandMilli = cpuDemandMilli
        self.memoryMiB = memoryMiB
        self.movable = movable
        self.busy = busy
    }
}
