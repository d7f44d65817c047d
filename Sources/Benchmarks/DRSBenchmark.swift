import Foundation
import Placement

/// `hostmesh bench drs`: the real `DRSRound` for a mesh of simulated hosts under a load that
/// shifts, round after round (every agent computes the same plan from the same view, so one
/// decision per round stands for all of them; each agent's is timed), against a centralized
/// greedy balancer given the whole picture and no limits (but the same threshold policy),
/// computed in the same run on the same final loads from the same start.
public enum DRSBenchmark {
    public struct Row: Codable, Sendable {
        public var hosts: Int
        public var vms: Int
        public var threshold: Int
        public var maxConcurrentMoves: Int
        /// One agent's decision (`DRSRound.decide`), milliseconds of wall time, and of the
        /// deciding thread's CPU time (what it costs on an idle core; wall time on a busy
        /// machine includes waiting for a core).
        public var decideMsP50: Double
        public var decideMsP99: Double
        public var decideCpuMsP50: Double
        public var decideCpuMsP99: Double
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

    /// CPU time of the calling thread, milliseconds.
    static func threadCPUMilliseconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) * 1000 + Double(time.tv_nsec) / 1e6
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
        var timings: [Double] = [], cpuTimings: [Double] = []
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
            let cpuBegan = threadCPUMilliseconds()
            let decision = DRSRound.decide(DRSRound.Input(view: view, settings: settings, localHost: local, migrationsInFlight: 0,
                                                          maxConcurrentMoves: maxConcurrentMoves))
            let elapsed = ContinuousClock.now - began
            cpuTimings.append(threadCPUMilliseconds() - cpuBegan)
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
        let (central, centralMoves) = centralGreedy(PlacementInput(hosts: hosts, vms: final, rules: rules), tolerance: settings.balance)
        var ours = vms
        for i in ours.indices { ours[i].cpuDemandMilli = base[i] }
        timings.sort()
        cpuTimings.sort()
        let p99 = min(timings.count - 1, Int(Double(timings.count) * 0.99))
        return Row(hosts: hostCount, vms: vmCount, threshold: threshold, maxConcurrentMoves: maxConcurrentMoves,
                   decideMsP50: timings[timings.count / 2], decideMsP99: timings[p99],
                   decideCpuMsP50: cpuTimings[cpuTimings.count / 2], decideCpuMsP99: cpuTimings[p99],
                   finalImbalance: Placement.loads(PlacementInput(hosts: hosts, vms: ours)).imbalance, centralImbalance: central,
                   migrations: migrations, centralMigrations: centralMoves, backAndForth: backAndForth, mustViolations: violations,
                   convergeRounds: quietSince < 0 ? maxRounds : quietSince, convergeSeconds: Double(quietSince < 0 ? maxRounds : quietSince) * 60)
    }

    /// The centralized greedy: with the whole picture, repeatedly makes the single best move in
    /// the mesh (any VM, to the least loaded host where its memory fits and its must
    /// anti-affinity rules hold) under the same policy filter as DRS (the threshold's minimum
    /// goodness plus the per-GiB cost), with no hold, no candidate limit and no
    /// limit on moves. Returns the final imbalance and the moves made.
    static func centralGreedy(_ input: PlacementInput, tolerance: BalanceTolerance) -> (Double, Int) {
        var vms = input.vms
        let hosts = input.hosts.sorted { $0.id < $1.id }
        var hostOf: [String: Int] = [:]
        for (i, h) in hosts.enumerated() { hostOf[h.id] = i }
        var cpu = Array(repeating: 0, count: hosts.count), mem = Array(repeating: 0, count: hosts.count)
        var location = vms.map { hostOf[$0.host]! }
        for (v, vm) in vms.enumerated() {
            cpu[location[v]] += vm.cpuDemandMilli
            mem[location[v]] += vm.memoryMiB
        }
        var index: [String: Int] = [:]
        for (v, vm) in vms.enumerated() { index[vm.id] = v }
        var partners = Array(repeating: [Int](), count: vms.count)
        for rule in input.rules where rule.must && rule.kind == .antiAffinity {
            let members = rule.vms.compactMap { index[$0] }
            for v in members { partners[v] += members.filter { $0 != v } }
        }
        func load(_ h: Int, cpu c: Int, mem m: Int) -> Double {
            max(Double(c) / Double(hosts[h].cpuCapacityMilli), Double(m) / Double(hosts[h].memoryCapacityMiB))
        }
        var moves = 0
        while true {
            let loads = hosts.indices.map { load($0, cpu: cpu[$0], mem: mem[$0]) }
            let order = hosts.indices.sorted { loads[$0] < loads[$1] }
            var best: (v: Int, d: Int, gain: Double)?
            for v in vms.indices {
                let s = location[v], vm = vms[v]
                // The least loaded host that takes it.
                guard let d = order.first(where: { d in
                    d != s && mem[d] + vm.memoryMiB <= hosts[d].memoryCapacityMiB && !partners[v].contains { location[$0] == d }
                }) else { continue }
                let ls = load(s, cpu: cpu[s] - vm.cpuDemandMilli, mem: mem[s] - vm.memoryMiB)
                let ld = load(d, cpu: cpu[d] + vm.cpuDemandMilli, mem: mem[d] + vm.memoryMiB)
                // The drop of the summed squared deviations (the mean does not change).
                let gain = loads[s] * loads[s] + loads[d] * loads[d] - ls * ls - ld * ld
                guard gain >= tolerance.minimumGoodness + tolerance.costPerGiB * Double(vm.memoryMiB) / 1024 else { continue }
                if best == nil || gain > best!.gain { best = (v, d, gain) }
            }
            guard let best else { break }
            let vm = vms[best.v], s = location[best.v]
            cpu[s] -= vm.cpuDemandMilli; mem[s] -= vm.memoryMiB
            cpu[best.d] += vm.cpuDemandMilli; mem[best.d] += vm.memoryMiB
            location[best.v] = best.d
            vms[best.v].host = hosts[best.d].id
            moves += 1
        }
        return (Placement.loads(PlacementInput(hosts: input.hosts, vms: vms)).imbalance, moves)
    }
}
