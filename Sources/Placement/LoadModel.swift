/// The load of every host under a tentative placement, kept incrementally so a candidate move
/// is scored in O(1): host load = max(CPU demand ÷ CPU capacity, VM memory ÷ memory capacity)
/// (VMware's entitlement ÷ capacity, taking the scarcer resource); imbalance = the population
/// standard deviation of the loads of the hosts that take VMs.
struct LoadModel {
    private(set) var hosts: [PlacementHost]
    private(set) var vms: [PlacementVM]
    let hostIndex: [String: Int]
    /// Per VM: the index of the host it is on in this model.
    private(set) var location: [Int]
    /// Per host: the VMs on it (indices), in VM order.
    private(set) var residents: [[Int]]
    private(set) var cpu: [Int]
    private(set) var memory: [Int]
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
        residents = Array(repeating: [], count: hosts.count)
        cpu = Array(repeating: 0, count: hosts.count)
        memory = Array(repeating: 0, count: hosts.count)
        for (v, vm) in vms.enumerated() {
            let h = location[v]
            residents[h].append(v)
            cpu[h] += vm.cpuDemandMilli
            memory[h] += vm.memoryMiB
        }
        balancedCount = hosts.filter(\.acceptsVMs).count
        busyCount = Array(repeating: 0, count: hosts.count)
        for (v, vm) in vms.enumerated() where vm.busy { busyCount[location[v]] += 1 }
        for h in hosts.indices where hosts[h].acceptsVMs {
            let l = load(h)
            sum += l
            sumOfSquares += l * l
        }
    }

    /// The order of ids everywhere in placement: their UTF-8 bytes, lexicographically (the same
    /// on every agent, and cheaper than `String`'s Unicode-aware comparison).
    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    static func load(cpu: Int, memory: Int, of host: PlacementHost) -> Double {
        let c = host.cpuCapacityMilli > 0 ? Double(cpu) / Double(host.cpuCapacityMilli) : (cpu > 0 ? 10 : 0)
        let m = host.memoryCapacityMiB > 0 ? Double(memory) / Double(host.memoryCapacityMiB) : (memory > 0 ? 10 : 0)
        return max(c, m)
    }

    func load(_ h: Int) -> Double { Self.load(cpu: cpu[h], memory: memory[h], of: hosts[h]) }

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
        let s = location[v], vm = vms[v]
        return (Self.load(cpu: cpu[s] - vm.cpuDemandMilli, memory: memory[s] - vm.memoryMiB, of: hosts[s]),
                Self.load(cpu: cpu[d] + vm.cpuDemandMilli, memory: memory[d] + vm.memoryMiB, of: hosts[d]))
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

    /// The imbalance if VM `v`, placed nowhere yet, were added to host `d` (initial placement).
    func imbalanceAfter(adding vm: PlacementVM, to d: Int) -> Double {
        guard hosts[d].acceptsVMs else { return imbalance }
        let before = load(d)
        let after = Self.load(cpu: cpu[d] + vm.cpuDemandMilli, memory: memory[d] + vm.memoryMiB, of: hosts[d])
        return Self.deviation(sum: sum + after - before, squares: sumOfSquares + after * after - before * before, count: balancedCount)
    }

    /// Memory left on host `d` for VMs: its capacity minus the model's VMs, and no more than it reports free.
    func memoryRoom(_ d: Int) -> Int {
        let byModel = hosts[d].memoryCapacityMiB - memory[d]
        return hosts[d].memoryFreeMiB.map { min(byModel, $0) } ?? byModel
    }

    mutating func move(_ v: Int, to d: Int) {
        let s = location[v], vm = vms[v]
        guard s != d else { return }
        for h in [s, d] where hosts[h].acceptsVMs {
            let l = load(h)
            sum -= l
            sumOfSquares -= l * l
        }
        cpu[s] -= vm.cpuDemandMilli
        memory[s] -= vm.memoryMiB
        cpu[d] += vm.cpuDemandMilli
        memory[d] += vm.memoryMiB
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
