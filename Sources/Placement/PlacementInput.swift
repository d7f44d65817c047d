/// Everything placement decides from: one agent's view of the mesh. Two agents with equal
/// inputs make equal decisions (every choice is ordered, ties broken by id).
public struct PlacementInput: Sendable, Hashable {
    public var hosts: [PlacementHost]
    public var vms: [PlacementVM]
    public var rules: [PlacementRule]

    public init(hosts: [PlacementHost], vms: [PlacementVM], rules: [PlacementRule] = []) {
        self.hosts = hosts
        self.vms = vms
        self.rules = rules
    }
}
