/// A host as placement sees it: its capacity for VMs and whether it may take or keep them.
/// Built by the agent from gossiped member metadata (Protocol.md §10.1); nothing here is measured.
public struct PlacementHost: Sendable, Hashable {
    /// Whether the host takes new VMs, and what happens to the VMs it has.
    public enum Availability: Sendable, Hashable {
        /// Takes VMs and keeps its own.
        case available
        /// In maintenance: takes nothing, and every VM on it must leave (mandatory moves).
        case evacuating
        /// Takes nothing, keeps its VMs where they are (not alive, unhealthy, another domain,
        /// no metadata yet). The reason is shown when no host can take a VM.
        case unavailable(String)
    }

    /// Host id.
    public var id: String
    /// CPU for VMs, in thousandths of a core (cores × 1000, after the host's own reserve).
    public var cpuCapacityMilli: Int
    /// Memory for VMs, in MiB (total after the host's reserve); VMs' memory is subtracted from it.
    public var memoryCapacityMiB: Int
    /// Memory the host itself reports free, in MiB (nil: not known). A destination must have the
    /// VM's memory free here too: the model's sum of VMs does not see what else the host runs.
    public var memoryFreeMiB: Int?
    public var availability: Availability
    /// A migration involves the host (its gossiped capacity says so): its loads are in flux, so
    /// balancing neither takes from it nor gives to it until they are measured again. Mandatory
    /// moves still may.
    public var settling: Bool

    /// A host with the given capacities.
    public init(id: String, cpuCapacityMilli: Int, memoryCapacityMiB: Int, memoryFreeMiB: Int? = nil, availability: Availability = .available,
                settling: Bool = false) {
        self.id = id
        self.settling = settling
        self.cpuCapacityMilli = cpuCapacityMilli
        self.memoryCapacityMiB = memoryCapacityMiB
        self.memoryFreeMiB = memoryFreeMiB
        self.availability = availability
    }

    /// Whether new VMs may be placed or moved here.
    public var acceptsVMs: Bool { availability == .available }
}
