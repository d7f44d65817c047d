/// What the mesh does with the VMs of a host that is not healthy (Protocol.md §11.3), replicated
/// to every agent. Whatever the policy, placement and DRS never choose a degraded or failing host.
public enum HealthPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// VMs stay where they are.
    case off
    /// A failing host's VMs move away (the default).
    case evacuateWhenFailing = "evacuate-when-failing"
    /// A degraded or failing host's VMs move away.
    case evacuateWhenDegraded = "evacuate-when-degraded"

    /// Whether a host in `state` is evacuated under this policy.
    public func evacuates(_ state: HealthState) -> Bool {
        switch self {
        case .off: false
        case .evacuateWhenFailing: state == .failing
        case .evacuateWhenDegraded: state >= .degraded
        }
    }
}
