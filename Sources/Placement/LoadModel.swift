/// The load of every host under a tentative placement, kept incrementally so a candidate move
/// is scored in O(1): host load = max(CPU entitlement ÷ CPU capacity, memory entitlement ÷ memory
/// capacity) (VMware's entitlement ÷ capacity, taking the scarcer resource; entitlements from
/// demand, reservations, limits, shares and pools, `Entitlements`); imbalance = the population
/// standard deviation of the loads of the hosts that take VMs.
struct LoadModel {
    private(set) var hosts: [PlacementHost]
    private(set) var vms: [PlacementVM]
    let hostIndex: [String: Int]
    /// Per VM: the index of the host it is on in this model.
    private(set) var location: [Int]
    /// Per host: the VMs on it (indices), in VM order.
    private(set) var residents: [[Int]]
    /// Per VM: its CPU (thousandths of a core) and memory (MiB) entitlement. A pool spans the
    /// mesh, so a move does not change them.
    let cpuEntitled: [Int]
    let memoryEntitled: [Int]
    /// Per host: the sum of its VMs' CPU and memory entitlements (what its load weighs).
    private(set) var cpu: [Int]
    private(set) var memoryLoad: [Int]
    /// Per host: its VMs' configured RAM (what must fit), and their CPU and memory reservations.
    private(set) var memory: [Int]
    private(set) var cpuReserved: [Int]
    private(set) var memoryReserved: [Int]
    /// Per host: how many of its VMs are busy (busy VMs never move in a plan).
    private(set) var busyCount: [Int]
    /// Sum and sum of squares of the loads of the balanced (accepting) hosts.
    private var sum = 0.0, sumOfSquares = 0.0
    let balancedCount: Int

    /// VMs on hosts the input does not list are left out (they cannot be reasoned about).
    init(_ input: PlacementInput) {
        hosts = input.hosts.sorted { Self.precedes($0.id, $1.id) }
        var index: [String: Int] = [:]
        for (i, host) in hosts.enumerated() { index[host.id] = i }
        hostIndex = index
        vms = input.vms.filter { index[$0.host] != nil }.sorted { Self.precedes($0.id, $1.id) }
        location = vms.map { index[$0.host]! }
        let pools = Dictionary(input.pools.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let poolNames = vms.map { vm in vm.pool.flatMap { pools[$0] != nil ? $0 : nil } }
        cpuEntitled = Entitlements.compute(vms.map { Entitlements.Claim(demand: $0.cpuDemandMilli, allocation: $0.cpu) }, pools: poolNames,
                                           allocations: pools.mapValues(\.cpu))
        memoryEntitled = Entitlements.compute(vms.map(\.memoryClaim), pools: poolNames, allocations: pools.mapValues(\.memory))
        residents = Array(repeating: [], count: hosts.count)
        cpu = Array(repeating: 0, count: hosts.count)
        memoryLoad = cpu
        memory = cpu
        cpuReserved = cpu
        memoryReserved = cpu
        busyCount = cpu
        balancedCount = hosts.filter(\.acceptsVMs).count
        for v in vms.indices {
            residents[location[v]].append(v)
            add(v, to: location[v], sign: 1)
        }
        for (v, vm) in vms.enumerated() where vm.busy { busyCount[location[v]] += 1 }
        for h in hosts.indices where hosts[h].acceptsVMs {
            let l = load(h)
            sum += l
            sumOfSquares += l * l
        }
    }

    /// Adds (sign 1) or removes (-1) VM `v`'s entitlements, memory and reservations on host `h`.
    private mutating func add(_ v: Int, to h: Int, sign: Int) {
        cpu[h] += sign * cpuEntitled[v]
        memoryLoad[h] += sign * memoryEntitled[v]
        memory[h] += sign * vms[v].memoryMiB
        cpuReserved[h] += sign * vms[v].cpu.reservation
        memoryReserved[h] += sign * vms[v].memory.reservation
    }

    /// The order of ids everywhere in placement: their UTF-8 bytes, lexicographically (the same
    /// on every agent, and cheaper than `String`'s Unicode-aware comparison).
    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    static func load(cpu: Int, memory: Int, of host: PlacementHost) -> Double {
        let c = host.cpuCapacityMilli > 0 ? Double(cpu) / Double(host.cpuCapacityMilli) : (cpu > 0 ? 10 : 0)
        let m = host.memoryCapacityMiB > 0 ? Double(memory) / Double(host.memoryCapacityMiB) : (memory > 0 ? 10 : 0)
        return max(c, m)
    }

    func load(_ h: Int) -> Double { Self.load(cpu: cpu[h], memory: memoryLoad[h], of: hosts[h]) }

    var meanLoad: Double { balancedCount == 0 ? 0 : sum / Double(balancedCount) }

    var imbalance: Double { Self.deviation(sum: sum, squares: sumOfSquares, count: balancedCount) }

    /// A move's goodness: how much it lowers the sum of the squared deviations of the host loads
    /// from their mean, `n × (σ² − σ'²)`. Unlike the change of σ itself, it does not shrink as the
    /// mesh grows: moving load x from a host at Ls to one at Ld is worth about 2x(Ls − Ld − x).
    func goodness(before: Double, after: Double) -> Double {
        Double(balancedCount) * (before * before - after * after)
    }

    private static func deviation(sum: Double, squares: Double, count: Int) -> Double {
        guard count > 0 else { return 0 }
        let mean = sum / Double(count)
        return (max(0, squares / Double(count) - mean * mean)).squareRoot()
    }

    /// Loads of the source and destination after moving VM `v` to host `d`.
    func loadsAfter(moving v: Int, to d: Int) -> (source: Double, destination: Double) {
        let s = location[v]
        return (Self.load(cpu: cpu[s] - cpuEntitled[v], memory: memoryLoad[s] - memoryEntitled[v], of: hosts[s]),
                Self.load(cpu: cpu[d] + cpuEntitled[v], memory: memoryLoad[d] + memoryEntitled[v], of: hosts[d]))
    }

    /// The imbalance if VM `v` moved to host `d`.
    func imbalanceAfter(moving v: Int, to d: Int) -> Double {
        let s = location[v]
        let after = loadsAfter(moving: v, to: d)
        var sum = self.sum, squares = sumOfSquares
        if hosts[s].acceptsVMs {
            let before = load(s)
            sum += after.source - before
            squares += after.source * after.source - before * before
        }
        if hosts[d].acceptsVMs {
            let before = load(d)
            sum += after.destination - before
            squares += after.destination * after.destination - before * before
        }
        return Self.deviation(sum: sum, squares: squares, count: balancedCount)
    }

    /// Host `d`'s load if VM `v`, placed nowhere yet (on a host that takes no part), were added.
    func loadAfter(adding v: Int, to d: Int) -> Double {
        Self.load(cpu: cpu[d] + cpuEntitled[v], memory: memoryLoad[d] + memoryEntitled[v], of: hosts[d])
    }

    /// The imbalance if VM `v`, placed nowhere yet, were added to host `d` (initial placement).
    func imbalanceAfter(adding v: Int, to d: Int) -> Double {
        guard hosts[d].acceptsVMs else { return imbalance }
        let before = load(d)
        let after = loadAfter(adding: v, to: d)
        return Self.deviation(sum: sum + after - before, squares: sumOfSquares + after * after - before * before, count: balancedCount)
    }

    /// Memory left on host `d` for VMs: its capacity minus the model's VMs, and no more than it reports free.
    func memoryRoom(_ d: Int) -> Int {
        let byModel = hosts[d].memoryCapacityMiB - memory[d]
        return hosts[d].memoryFreeMiB.map { min(byModel, $0) } ?? byModel
    }

    /// Why host `d` cannot hold VM `v` (nil: it can): its memory, or the reservations already
    /// on it (admission control, Protocol.md §10.9).
    func roomRefusal(placing v: Int, on d: Int) -> String? {
        let vm = vms[v], host = hosts[d]
        let room = memoryRoom(d)
        if room < vm.memoryMiB { return "\(host.id): \(max(0, room)) MiB free, the VM needs \(vm.memoryMiB)" }
        let cpuLeft = host.cpuCapacityMilli - cpuReserved[d]
        if vm.cpu.reservation > cpuLeft {
            return "\(host.id): \(max(0, cpuLeft)) thousandths of a core unreserved, the VM reserves \(vm.cpu.reservation)"
        }
        let memoryLeft = host.memoryCapacityMiB - memoryReserved[d]
        if vm.memory.reservation > memoryLeft {
            return "\(host.id): \(max(0, memoryLeft)) MiB unreserved, the VM reserves \(vm.memory.reservation)"
        }
        return nil
    }

    mutating func move(_ v: Int, to d: Int) {
        let s = location[v], vm = vms[v]
        guard s != d else { return }
        for h in [s, d] where hosts[h].acceptsVMs {
            let l = load(h)
            sum -= l
            sumOfSquares -= l * l
        }
        add(v, to: s, sign: -1)
        add(v, to: d, sign: 1)
        // The destination reported its free memory before the move: the VM now takes from it.
        if let free = hosts[d].memoryFreeMiB { hosts[d].memoryFreeMiB = free - vm.memoryMiB }
        for h in [s, d] where hosts[h].acceptsVMs {
            let l = load(h)
            sum += l
            sumOfSquares += l * l
        }
        residents[s].removeAll { $0 == v }
        residents[d].append(v)
        location[v] = d
        vms[v].host = hosts[d].id
    }
}
