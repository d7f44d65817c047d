import Placement
import Testing

/// A small seeded generator (SplitMix64): the same seed gives the same run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The real `DRSRound` run by every agent of a simulated mesh, round after round, with noisy and
/// shifting VM loads: what the agents start is applied, moved VMs are held for `hold` rounds,
/// and the invariants are checked at every round (the seed is in every failure message).
struct BalancingWorld {
    var hosts: [PlacementHost]
    var vms: [PlacementVM]
    /// Each VM's underlying demand; what agents see is this with noise.
    var base: [String: Int]
    var rules: [PlacementRule]
    var heldUntil: [String: Int] = [:]
    /// Per VM, the hosts it has been on, in order.
    var path: [String: [String]] = [:]
    var moves = 0
    var rng: SplitMix
    let seed: UInt64
    let hold: Int
    let settings = DRSSettings(automation: .full, threshold: 3)

    init(seed: UInt64, hostCount: Int, vmsPerHost: Int, hold: Int) {
        self.seed = seed
        self.hold = hold
        rng = SplitMix(state: seed)
        hosts = (0..<hostCount).map { PlacementHost(id: "h\($0 < 10 ? "0" : "")\($0)", cpuCapacityMilli: 8000, memoryCapacityMiB: 65_536) }
        vms = []
        base = [:]
        // Skewed start: the first third of the hosts carry most VMs.
        for i in 0..<(hostCount * vmsPerHost) {
            let hostIndex = i % 3 == 0 ? Int.random(in: 0..<hostCount, using: &rng) : Int.random(in: 0..<max(1, hostCount / 3), using: &rng)
            let id = "vm\(i)"
            base[id] = Int.random(in: 50...900, using: &rng)
            vms.append(PlacementVM(id: id, name: id, host: hosts[hostIndex].id, cpuDemandMilli: base[id]!,
                                   memoryMiB: [512, 1024, 2048][Int.random(in: 0..<3, using: &rng)]))
        }
        rules = [
            PlacementRule(name: "apart", kind: .antiAffinity, vms: ["vm1", "vm2", "vm4"], must: true),
            PlacementRule(name: "never-h00", kind: .notOn, vms: ["vm7", "vm8"], hosts: ["h00"], must: true),
        ]
        for vm in vms { path[vm.id] = [vm.host] }
    }

    /// One round: noisy loads seen by every agent, every agent decides, what they start happens.
    mutating func round(_ r: Int, noise: Double) {
        for i in vms.indices {
            let b = Double(base[vms[i].id]!)
            vms[i].cpuDemandMilli = max(0, Int(b * (1 + Double.random(in: -noise...noise, using: &rng))))
            vms[i].movable = (heldUntil[vms[i].id] ?? 0) <= r
        }
        let view = PlacementInput(hosts: hosts, vms: vms, rules: rules)
        var started: [PlacementMove] = []
        var plans = Set<PlacementPlan>()
        for host in hosts {
            let decision = DRSRound.decide(DRSRound.Input(view: view, settings: settings, localHost: host.id, migrationsInFlight: 0, maxConcurrentMoves: 8))
            plans.insert(decision.plan)
            #expect(decision.execute.allSatisfy { $0.from == host.id }, "seed \(seed) round \(r): an agent moved a VM it does not own")
            started += decision.execute
        }
        #expect(plans.count == 1, "seed \(seed) round \(r): agents with one view made different plans")
        #expect(Set(started.map(\.vm)).count == started.count, "seed \(seed) round \(r): a VM was moved twice in one round")
        for move in started {
            let i = vms.firstIndex { $0.id == move.vm }!
            #expect(vms[i].movable || move.reason.isMandatory, "seed \(seed) round \(r): \(move.vm) moved during its hold")
            vms[i].host = move.to
            heldUntil[move.vm] = r + 1 + hold
            path[move.vm, default: []].append(move.to)
            moves += 1
        }
        // Admission: every destination still fits its VMs' memory.
        for host in hosts where started.contains(where: { $0.to == host.id }) {
            let used = vms.filter { $0.host == host.id }.reduce(0) { $0 + $1.memoryMiB }
            #expect(used <= host.memoryCapacityMiB, "seed \(seed) round \(r): \(host.id) holds \(used) MiB")
        }
        #expect(Placement.violations(PlacementInput(hosts: hosts, vms: vms, rules: rules)).filter(\.rule.must).isEmpty,
                "seed \(seed) round \(r): a must rule is broken")
    }

    /// VMs that went back to a host they had left (A → B → A).
    var backAndForth: [String] {
        path.filter { _, hosts in
            hosts.count >= 3 && zip(hosts, hosts.dropFirst(2)).contains { $0 == $1 }
        }.keys.sorted()
    }

    var imbalance: Double { Placement.loads(PlacementInput(hosts: hosts, vms: vms)).imbalance }
}

@Suite struct BalancingSimulationTests {
    @Test(arguments: [1, 2, 42, 2026] as [UInt64])
    func noisyLoadsConvergeAndNoVMMovesBackAndForth(seed: UInt64) {
        var world = BalancingWorld(seed: seed, hostCount: 16, vmsPerHost: 8, hold: 5)
        let start = world.imbalance
        for r in 0..<40 { world.round(r, noise: 0.10) }
        let movesAfterConvergence = world.moves
        // Converged: under the threshold's target, and 80 more noisy rounds move nothing.
        #expect(world.imbalance <= BalanceTolerance(threshold: 3).target, "seed \(seed): imbalance \(world.imbalance) from \(start)")
        for r in 40..<120 { world.round(r, noise: 0.10) }
        #expect(world.moves == movesAfterConvergence, "seed \(seed): \(world.moves - movesAfterConvergence) moves after convergence (thrashing)")
        #expect(world.backAndForth.isEmpty, "seed \(seed): back and forth: \(world.backAndForth)")
        #expect(world.moves > 0 && world.moves < world.vms.count, "seed \(seed): \(world.moves) moves")
    }

    @Test(arguments: [7, 8, 9] as [UInt64])
    func shiftingLoadsStayBalancedWithinTheRules(seed: UInt64) {
        var world = BalancingWorld(seed: seed, hostCount: 12, vmsPerHost: 10, hold: 8)
        for r in 0..<100 {
            // Every 25 rounds a tenth of the VMs change their demand a lot.
            if r % 25 == 24 {
                for _ in 0..<(world.vms.count / 10) {
                    let id = world.vms[Int.random(in: 0..<world.vms.count, using: &world.rng)].id
                    world.base[id] = Int.random(in: 50...1500, using: &world.rng)
                }
            }
            world.round(r, noise: 0.10)
        }
        #expect(world.imbalance <= BalanceTolerance(threshold: 3).target + 0.05, "seed \(seed): imbalance \(world.imbalance)")
        #expect(world.backAndForth.isEmpty, "seed \(seed): back and forth: \(world.backAndForth)")
    }
}
