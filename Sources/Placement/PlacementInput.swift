/// Everything placement decides from: one agent's view of the mesh (hosts, VMs, rules, resource
/// pools). Two agents with equal inputs make equal decisions (every choice is ordered, ties broken by id).
public struct PlacementInput: Sendable, Hashable {
    public var hosts: [PlacementHost]
    public var vms: [PlacementVM]
    public var rules: [PlacementRule]
    /// The live pools; a VM whose pool is not here is treated as in no pool.
    public var pools: [ResourcePool]

    public init(hosts: [PlacementHost], vms: [PlacementVM], rules: [PlacementRule] = [], pools: [ResourcePool] = []) {
        self.hosts = hosts
        self.vms = vms
        self.rules = rules
        self.pools = pools
    }
}
