import ArgumentParser
import Hypervisor
import Placement

/// A VM's pool, reservations, limits, shares and DRS overrides (`vm create`, Protocol.md §10.9).
struct ResourceOptions: ParsableArguments {
    @Option(help: "Resource pool to put the VM in (`hostmesh pool list`).") var pool: String?
    @Option(help: "CPU reserved for it, thousandths of a core (admission-controlled).") var cpuReservation: Int?
    @Option(help: "At most this much CPU, thousandths of a core (enforced on its host with cgroups).") var cpuLimit: Int?
    @Option(help: "CPU shares: low, normal, high or a number (normal 1000).") var cpuShares: String?
    @Option(help: "Memory reserved for it, MiB (admission-controlled).") var memoryReservation: Int?
    @Option(help: "Its memory entitlement is at most this, MiB (weighs in DRS balancing).") var memoryLimit: Int?
    @Option(help: "Memory shares: low, normal, high or a number (normal 1000).") var memoryShares: String?
    @Option(help: "Its own DRS automation level: manual, partial or full (default: the mesh's).") var drsAutomation: String?
    @Option(help: "Its own DRS migration threshold 1-5 (default: the mesh's).") var drsThreshold: Int?

    /// The resources, or nil when no option was given.
    func resources() throws -> VMSpec.Resources? {
        guard pool != nil || cpuReservation != nil || cpuLimit != nil || cpuShares != nil || memoryReservation != nil || memoryLimit != nil
            || memoryShares != nil || drsAutomation != nil || drsThreshold != nil else { return nil }
        func shares(_ text: String?, _ flag: String) throws -> Int {
            guard let text else { return ResourceAllocation.normalShares }
            guard let value = ResourceAllocation.shares(text) else { throw ValidationError("--\(flag) takes low, normal, high or 1-1000000") }
            return value
        }
        return VMSpec.Resources(pool: pool,
                                cpu: VMSpec.Allocation(reservation: cpuReservation ?? 0, limit: cpuLimit, shares: try shares(cpuShares, "cpu-shares")),
                                memory: VMSpec.Allocation(reservation: memoryReservation ?? 0, limit: memoryLimit, shares: try shares(memoryShares, "memory-shares")),
                                automation: drsAutomation, threshold: drsThreshold)
    }
}
