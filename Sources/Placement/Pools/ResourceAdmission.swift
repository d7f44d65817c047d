/// Admission control of reservations and pools against the mesh (Protocol.md §10.9): what is
/// refused when a pool is written or a VM is defined, with the reason. Where a VM may run (its
/// reservation fits a host's unreserved capacity) is checked by placement itself. Pure.
public enum ResourceAdmission {
    /// A VM's allocation: meaningful, its pool known, its reservations within one host and
    /// within its pool's limits. `view` is the mesh now (its VMs' reservations count).
    public static func check(vm name: String, memoryMiB: Int, pool: String?, cpu: ResourceAllocation, memory: ResourceAllocation,
                             in view: PlacementInput) throws(PlacementError) {
        try cpu.validate("VM \(name)'s CPU", unit: "thousandths of a core")
        try memory.validate("VM \(name)'s memory", unit: "MiB")
        guard memory.reservation <= memoryMiB else {
            throw .badPool("VM \(name) reserves \(memory.reservation) MiB of memory but has \(memoryMiB) MiB: reserve at most its RAM")
        }
        let hosts = view.hosts.filter(\.acceptsVMs)
        if !hosts.isEmpty {
            let cpuMax = hosts.map(\.cpuCapacityMilli).max()!, memoryMax = hosts.map(\.memoryCapacityMiB).max()!
            guard cpu.reservation <= cpuMax else {
                throw .badPool("VM \(name) reserves \(cpu.reservation) thousandths of a core, more than any host has (the largest has \(cpuMax)): lower the reservation")
            }
            guard memory.reservation <= memoryMax else {
                throw .badPool("VM \(name) reserves \(memory.reservation) MiB, more than any host has for VMs (the largest has \(memoryMax) MiB): lower the reservation")
            }
        }
        guard let pool else { return }
        guard let found = view.pools.first(where: { $0.name == pool }) else {
            let known = view.pools.map(\.name).sorted()
            throw .badPool("no resource pool named \(pool)" + (known.isEmpty ? ": create it first (`hostmesh pool create \(pool)`)"
                                                                    : " (pools: \(known.joined(separator: ", "))): `hostmesh pool list` shows them"))
        }
        let members = view.vms.filter { $0.pool == pool && $0.name != name }
        try fits(cpu.reservation + members.reduce(0) { $0 + $1.cpu.reservation }, found.cpu.limit, "CPU", "thousandths of a core", pool: pool, vm: name)
        try fits(memory.reservation + members.reduce(0) { $0 + $1.memory.reservation }, found.memory.limit, "memory", "MiB", pool: pool, vm: name)
    }

    private static func fits(_ reserved: Int, _ limit: Int?, _ resource: String, _ unit: String, pool: String, vm: String) throws(PlacementError) {
        guard let limit, reserved > limit else { return }
        throw .badPool("VM \(vm) would bring the \(resource) reservations in pool \(pool) to \(reserved) \(unit), above the pool's limit of \(limit): "
                       + "lower the VM's reservation or raise the pool's limit")
    }

    /// A pool as written: meaningful, its limits not below what its VMs already reserve, its
    /// reservation within the mesh's capacity beside the other pools' and VMs' reservations.
    public static func check(pool: ResourcePool, in view: PlacementInput) throws(PlacementError) {
        try pool.validate()
        let members = view.vms.filter { $0.pool == pool.name }
        for (resource, unit, allocation, reserved) in [
            ("CPU", "thousandths of a core", pool.cpu, members.reduce(0) { $0 + $1.cpu.reservation }),
            ("memory", "MiB", pool.memory, members.reduce(0) { $0 + $1.memory.reservation }),
        ] {
            if let limit = allocation.limit, reserved > limit {
                throw .badPool("pool \(pool.name)'s \(resource) limit \(limit) \(unit) is below what its VMs already reserve (\(reserved) \(unit)): raise the limit or lower their reservations")
            }
        }
        let hosts = view.hosts.filter(\.acceptsVMs)
        guard !hosts.isEmpty else { return }
        let others = view.pools.filter { $0.name != pool.name }
        let cpuTotal = hosts.reduce(0) { $0 + $1.cpuCapacityMilli }, memoryTotal = hosts.reduce(0) { $0 + $1.memoryCapacityMiB }
        let cpuElsewhere = reserved(\.cpu, pools: others, vms: view.vms, excluding: pool.name)
        let memoryElsewhere = reserved(\.memory, pools: others, vms: view.vms, excluding: pool.name)
        guard pool.cpu.reservation + cpuElsewhere <= cpuTotal else {
            throw .badPool("pool \(pool.name) reserves \(pool.cpu.reservation) thousandths of a core, but the mesh has \(max(0, cpuTotal - cpuElsewhere)) unreserved "
                           + "(\(cpuTotal) in all): lower the reservation")
        }
        guard pool.memory.reservation + memoryElsewhere <= memoryTotal else {
            throw .badPool("pool \(pool.name) reserves \(pool.memory.reservation) MiB, but the mesh has \(max(0, memoryTotal - memoryElsewhere)) MiB unreserved "
                           + "(\(memoryTotal) MiB in all): lower the reservation")
        }
    }

    /// What the mesh has reserved for one resource outside pool `excluded`: each other pool its
    /// reservation or its VMs' reservations, whichever is larger, plus VMs in no (known) pool.
    static func reserved(_ resource: KeyPath<ResourcePool, ResourceAllocation>, pools: [ResourcePool], vms: [PlacementVM],
                         excluding excluded: String) -> Int {
        let vmResource: KeyPath<PlacementVM, ResourceAllocation> = resource == \ResourcePool.cpu ? \.cpu : \.memory
        let known = Set(pools.map(\.name))
        var total = 0
        for pool in pools {
            let inside = vms.filter { $0.pool == pool.name }.reduce(0) { $0 + $1[keyPath: vmResource].reservation }
            total += max(pool[keyPath: resource].reservation, inside)
        }
        total += vms.filter { $0.pool != excluded && !known.contains($0.pool ?? "") }.reduce(0) { $0 + $1[keyPath: vmResource].reservation }
        return total
    }
}
