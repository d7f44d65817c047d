import Foundation
import Placement

/// `hostmesh bench drs`: the real `DRSRound` for a mesh of simulated hosts under a load that
/// shifts, round after round (every agent computes the same plan from the same view, so one
/// decision per round stands for all of them; each agent's is timed), against a centralized
/// greedy balancer given the whole picture and no limits, computed in the same run on the same
/// final loads from the same start.
public enum DRSBenchmark {
    public struct Row: Codable, Sendable {
        public var hosts: Int
        public var vms: Int
        public var threshold: Int
        public var maxConcurrentMoves: Int
        /// One agent's decision (`DRSRound.decide`), milliseconds.
        public var decideMsP50: Double
        public var decideMsP99: Double
        public var finalImbalance: Double
        public var centralImbalance: Double
        public var migrations: Int
        public var centralMigrations: Int
        /// VMs that went back to a host they had left; "must" rules broken at any round.
        public var backAndForth: Int
        public var mustViolations: Int
        /// Rounds until the first round with no move after the last load shift, and that at
        /// the default 60 s interval.
        public var convergeRounds: Int
        public var convergeSeconds: Double
    }

    struct Rng: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Hosts of 32 cores and 512 GiB; VMs of 0.05-1.5 cores and 1-8 GiB, two thirds of them
    /// started on a fifth of the hosts; anti-affinity rules on 1% of the VMs in groups of 4.
    /// The first `shifts` times every 10 rounds, 5% of the VMs change their demand; every round
    /// every VM's measured demand has ±5% noise. Runs until a round after the last shift moves
    /// nothing, or `maxRounds`.
    public static func run(hosts hostCount: Int, vms vmCount: Int, threshold: Int = 5, maxConcurrentMoves: Int = 64,
                           shifts: Int = 3, maxRounds: Int = 2000, seed: UInt64 = 2026) -> Row {
        var rng = Rng(state: seed)
        let hosts = (0..<hostCount).map { PlacementHost(id: String(format: "h%05d", $0), cpuCapacityMilli: 32_000, memoryCapacityMiB: 524_288) }
        var base: [Int] = []
        var vms: [PlacementVM] = []
        for i in 0..<vmCount {
            let h = i % 3 == 0 ? Int.random(in: 0..<hostCount, using: &rng) : Int.random(in: 0..<max(1, hostCount / 5), using: &rng)
            base.append(Int.random(in: 50...1500, using: &rng))
            vms.append(PlacementVM(id: String(format: "vm%06d", i), name: String(format: "vm%06d", i), host: hosts[h].id,
                                   cpuDemandMilli: base[i], memoryMiB: 1024 * Int.random(in: 1...8, using: &rng)))
        }
        var rules: [PlacementRule] = []
        for g in 0..<(vmCount / 400) {
            rules.append(PlacementRule(name: "apart-\(g)", kind: .antiAffinity, vms: (0..<4).map { vms[(g * 97 + $0 * 13) % vmCount].id }, must: true))
        }
        // Start within the rules: members of a group that share a host are spread first.
        let initial = Placement.plan(PlacementInput(hosts: hosts, vms: vms, rules: rules), tolerance: BalanceTolerance(threshold: 1), maxMoves: Int.max)
        for move in initial.moves { vms[vms.firstIndex { $0.id == move.vm }!].host = move.to }
        let start = vms
        let settings = DRSSettings(automation: .full, threshold: threshold)
        let hold = 10
        var heldUntil: [Int: Int] = [:]
        var path: [Int: [String]] = [:]
        var index: [String: Int] = [:]
        for (i, vm) in vms.enumerated() { index[vm.id] = i }
        var timings: [Double] = []
        var migrations = 0, violations = 0, round = 0, quietSince = -1
        let lastShift = shifts * 10
        while round < maxRounds {
            if round > 0 && round % 10 == 0 && round <= lastShift {
                for _ in 0..<(vmCount / 20) { base[Int.random(in: 0..<vmCount, using: &rng)] = Int.random(in: 50...1500, using: &rng) }
            }
            for i in vms.indices {
                vms[i].cpuDemandMilli = Int(Double(base[i]) * Double.random(in: 0.95...1.05, using: &rng))
                vms[i].movable = (heldUntil[i] ?? 0) <= round
            }
            let view = PlacementInput(hosts: hosts, vms: vms, rules: rules)
            let local = hosts[Int.random(in: 0..<hostCount, using: &rng)].id
            let began = ContinuousClock.now
            let decision = DRSRound.decide(DRSRound.Input(view: view, settings: settings, localHost: local, migrationsInFlight: 0,
                                                          maxConcurrentMoves: maxConcurrentMoves))
            let elapsed = ContinuousClock.now - began
            timings.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)
            // Together the agents start the plan's allowed prefix, each move by the VM's owner.
            let started = decision.plan.moves.prefix(maxConcurrentMoves)
            for move in started {
                let i = index[move.vm]!
                if path[i] == nil { path[i] = [vms[i].host] }
                vms[i].host = move.to
                path[i]!.append(move.to)
                heldUntil[i] = round + 1 + hold
                migrations += 1
            }
            violations += Placement.violations(PlacementInput(hosts: hosts, vms: vms, rules: rules)).filter(\.rule.must).count
            round += 1
            if started.isEmpty && round > lastShift {
                quietSince = round
                break
            }
        }
        let backAndForth = path.values.filter { p in p.count >= 3 && zip(p, p.dropFirst(2)).contains { $0 == $1 } }.count
        // The centralized greedy: the final loads without noise, from the same start, whole picture, no limits.
        var final = start
        for i in final.indices { final[i].cpuDemandMilli = base[i] }
        let (central, centralMoves) = centralGreedy(PlacementInput(hosts: hosts, vms: final, rules: rules))
        var ours = vms
        for i in ours.indices { ours[i].cpuDemandMilli = base[i] }
        timings.sort()
        return Row(hosts: hostCount, vms: vmCount, threshold: threshold, maxConcurrentMoves: maxConcurrentMoves,
                   decideMsP50: timings[timings.count / 2], decideMsP99: timings[min(timings.count - 1, Int(Double(timings.count) * 0.99))],
                   finalImbalance: Placement.loads(PlacementInput(hosts: hosts, vms: ours)).imbalance, centralImbalance: central,
                   migrations: migrations, centralMigrations: centralMoves, backAndForth: backAndForth, mustViolations: violations,
                   convergeRounds: quietSince < 0 ? maxRounds : quietSince, convergeSeconds: Double(quietSince < 0 ? maxRounds : quietSince) * 60)
    }

    /// The classic centralized greedy: while some move helps, move the VM from the most loaded
    /// host to the least loaded one that lowers the imbalance most (memory fits, must rules kept),
    /// any improvement, no hold, no limit. Returns the final imbalance and the moves made.
    static func centralGreedy(_ input: PlacementInput) -> (Double, Int) {
        var vms = input.vms
        var moves = 0
        var hostOf: [String: Int] = [:]
        let hosts = input.hosts.sorted { $0.id < $1.id }
        for (i, h) in hosts.enumerated() { hostOf[h.id] = i }
        var cpu = Array(repeating: 0, count: hosts.count), mem = Array(repeating: 0, count: hosts.count)
        var residents = Array(repeating: [Int](), count: hosts.count)
        for (v, vm) in vms.enumerated() {
            let h = hostOf[vm.host]!
            cpu[h] += vm.cpuDemandMilli
            mem[h] += vm.memoryMiB
            residents[h].append(v)
        }
        var groups: [String: [String]] = [:] // vm id → anti-affinity partners
        for rule in input.rules where rule.must && rule.kind == .antiAffinity {
            for vm in rule.vms { groups[vm, default: []] += rule.vms.filter { $0 != vm } }
        }
        var location: [String: Int] = [:]
        for (v, vm) in vms.enumerated() { location[vm.id] = hostOf[vm.host]! ; _ = v }
        func load(_ h: Int) -> Double { max(Double(cpu[h]) / Double(hosts[h].cpuCapacityMilli), Double(mem[h]) / Double(hosts[h].memoryCapacityMiB)) }
        while moves < 1_000_000 {
            let loads = hosts.indices.map(load)
            let source = loads.indices.max { loads[$0] < loads[$1] }!, destination = loads.indices.min { loads[$0] < loads[$1] }!
            let gap = loads[source] - loads[destination]
            var best: (v: Int, gain: Double)?
            for v in residents[source] {
                let vm = vms[v]
                guard mem[destination] + vm.memoryMiB <= hosts[destination].memoryCapacityMiB,
                      !(groups[vm.id] ?? []).contains(where: { location[$0] == destination }) else { continue }
                let s = max(Double(cpu[source] - vm.cpuDemandMilli) / Double(hosts[source].cpuCapacityMilli), Double(mem[source] - vm.memoryMiB) / Double(hosts[source].memoryCapacityMiB))
                let d = max(Double(cpu[destination] + vm.cpuDemandMilli) / Double(hosts[destination].cpuCapacityMilli), Double(mem[destination] + vm.memoryMiB) / Double(hosts[destination].memoryCapacityMiB))
                // Sum of squares falls by this much (the mean is unchanged).
                let gain = loads[source] * loads[source] + loads[destination] * loads[destination] - s * s - d * d
                if gain > 1e-12, best == nil || gain > best!.gain { best = (v, gain) }
            }
            guard let best, gap > 0 else { break }
            let vm = vms[best.v]
            cpu[source] -= vm.cpuDemandMilli; mem[source] -= vm.memoryMiB; residents[source].removeAll { $0 == best.v }
            cpu[destination] += vm.cpuDemandMilli; mem[destination] += vm.memoryMiB; residents[destination].append(best.v)
            vms[best.v].host = hosts[destination].id
            location[vm.id] = destination
            moves += 1
        }
        return (Placement.loads(PlacementInput(hosts: input.hosts, vms: vms)).imbalance, moves)
    }
}
