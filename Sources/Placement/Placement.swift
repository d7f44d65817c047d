/// Placement and balancing (Protocol.md §10.4): pure functions from a view of the mesh to
/// decisions. No I/O, no clock, no randomness: equal inputs give equal outputs, which is what
/// lets every agent compute the same plan and act only on its own VMs.
public enum Placement {
    /// Sources and destinations examined per balancing step: the most and the least loaded hosts.
    /// Bounds one step to `candidateHosts² × VMs per host` evaluations whatever the mesh size.
    public static let candidateHosts = 8

    /// One round's plan: mandatory moves first (VMs of evacuating hosts, VMs breaking a "must"
    /// anti-affinity or VM-host rule), then, if the threshold balances and the imbalance is
    /// above its target, the best balancing moves one at a time (down to 3/4 of the target), each applied to the model
    /// before the next is chosen, at most `maxMoves` moves in all.
    ///
    /// A balancing move must (a) have a goodness (`LoadModel.goodness`: how much it lowers the sum
    /// of squared load deviations) of at least `minimumGoodness + costPerGiB × GiB`: goodness is
    /// the change of a function of the placement, so the move back has goodness −g and is never
    /// proposed from the same loads; (b) keep every rule, "must" and "should"; (c) fit the
    /// destination's memory and unreserved capacity (a VM's own threshold, when it has one,
    /// replaces the mesh's minimum goodness for it). A VM moves at most
    /// once per plan; VMs not `movable` (held after a move) are not moved for balance. Hosts with
    /// a busy VM or `settling` are neither sources nor destinations of balancing moves: a wave's
    /// outcome is measured before the next wave uses those hosts.
    public static func plan(_ input: PlacementInput, tolerance: BalanceTolerance, maxMoves: Int) -> PlacementPlan {
        var model = LoadModel(input)
        let book = RuleBook(input.rules, vms: model.vms)
        let violationsBefore = book.violations(in: model)
        let imbalanceBefore = model.imbalance
        var moves: [PlacementMove] = []
        var unplaced: [UnplacedVM] = []
        var moved = Set<Int>()

        func record(_ v: Int, to d: Int, _ reason: MoveReason) {
            let before = model.imbalance
            let loads = model.loadsAfter(moving: v, to: d)
            let vm = model.vms[v]
            model.move(v, to: d)
            moved.insert(v)
            moves.append(PlacementMove(vm: vm.id, vmName: vm.name, from: vm.host, to: model.hosts[d].id, reason: reason,
                                       imbalanceBefore: before, imbalanceAfter: model.imbalance,
                                       sourceLoadAfter: loads.source, destinationLoadAfter: loads.destination))
        }

        // 1. Mandatory: evacuations, biggest first (they are the hardest to fit), then broken rules.
        var mandatory: [(Int, MoveReason)] = []
        for h in model.hosts.indices where model.hosts[h].availability == .evacuating {
            let ordered = model.residents[h].sorted { (model.vms[$0].memoryMiB, $1) > (model.vms[$1].memoryMiB, $0) }
            mandatory += ordered.map { ($0, .evacuation) }
        }
        for violation in violationsBefore where violation.rule.must && violation.rule.kind != .affinity {
            for v in violation.members {
                guard
                      model.hosts[model.location[v]].acceptsVMs, !mandatory.contains(where: { $0.0 == v }) else { continue }
                mandatory.append((v, .rule(violation.rule.name)))
            }
        }
        for (v, reason) in mandatory {
            let vm = model.vms[v]
            if vm.busy { continue } // migrating already: its outcome shows in the next view
            guard !vm.paused else {
                unplaced.append(UnplacedVM(vm: vm.id, vmName: vm.name, host: vm.host, reason: Self.pausedReason))
                continue
            }
            switch destination(for: v, in: model, book: book) {
            case .success(let d):
                if moves.count < maxMoves { record(v, to: d, reason) }
            case .failure(let reasons):
                unplaced.append(UnplacedVM(vm: vm.id, vmName: vm.name, host: vm.host, reason: reasons.description))
            }
        }

        // 2. Balance.
        // Started above the target, balancing goes on down to `resumeFraction` of it: noise must
        // then raise the imbalance by a quarter of the target before the next round starts again.
        if tolerance.balances, model.imbalance > tolerance.target {
            let floor = tolerance.target * BalanceTolerance.resumeFraction
            while moves.count < maxMoves, model.imbalance > floor, let best = bestBalancingMove(in: model, book: book, tolerance: tolerance, excluding: moved) {
                record(best.vm, to: best.destination, .balance)
            }
        }
        var loads: [String: Double] = [:]
        for h in model.hosts.indices { loads[model.hosts[h].id] = model.load(h) }
        return PlacementPlan(moves: moves, unplaced: unplaced, violationsBefore: violationsBefore, violationsAfter: book.violations(in: model),
                             imbalanceBefore: imbalanceBefore, imbalanceAfter: model.imbalance, target: tolerance.target, loadsAfter: loads)
    }

    private static func bestBalancingMove(in model: LoadModel, book: RuleBook, tolerance: BalanceTolerance,
                                          excluding moved: Set<Int>) -> (vm: Int, destination: Int)? {
        let accepting = model.hosts.indices.filter { model.hosts[$0].acceptsVMs }
        // Hosts whose loads are in flux (a migration under way, a VM not measured yet) take no part.
        let settled = accepting.filter { !model.hosts[$0].settling && model.busyCount[$0] == 0 }
        let loads = settled.map { ($0, model.load($0)) }
        let mean = model.meanLoad
        // Hosts are in id order in the model, so an index tie-break is an id tie-break.
        let sources = loads.filter { $0.1 > mean }.sorted { ($0.1, $1.0) > ($1.1, $0.0) }.prefix(candidateHosts)
        let destinations = loads.filter { $0.1 < mean }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(candidateHosts)
        let current = model.imbalance
        var best: (vm: Int, destination: Int, after: Double)?
        for (s, _) in sources {
            for v in model.residents[s] where !moved.contains(v) {
                let vm = model.vms[v]
                guard vm.movable, !vm.busy else { continue }
                // A VM's own threshold replaces the mesh's minimum goodness for it (1: never for balance).
                let own = vm.threshold.map(BalanceTolerance.init(threshold:)) ?? tolerance
                guard own.balances else { continue }
                let required = own.minimumGoodness + own.costPerGiB * Double(vm.memoryMiB) / 1024
                for (d, _) in destinations {
                    guard model.roomRefusal(placing: v, on: d) == nil else { continue }
                    let after = model.imbalanceAfter(moving: v, to: d)
                    guard model.goodness(before: current, after: after) >= required else { continue }
                    // VMs and hosts are in id order in the model: index tie-breaks are id tie-breaks.
                    if let b = best, (after, v, d) >= (b.after, b.vm, b.destination) { continue }
                    guard book.broken(placing: v, on: d, in: model).isEmpty else { continue }
                    best = (v, d, after)
                }
            }
        }
        return best.map { ($0.vm, $0.destination) }
    }

    /// Why no destination: one line per kind of refusal, naming the hosts.
    struct Refusals: CustomStringConvertible {
        var lines: [String]
        var description: String { lines.isEmpty ? "no other host in the mesh" : lines.joined(separator: "; ") }
    }

    /// The best host for VM `v` that keeps every "must" rule, preferring hosts that also keep
    /// the "should" rules; best = the lowest imbalance after, then the lowest load, then the id.
    private static func destination(for v: Int, in model: LoadModel, book: RuleBook) -> Result<Int, PlacementError> {
        let vm = model.vms[v]
        var keepsAll: [(Double, Double, Int)] = []
        var keepsMust: [(Double, Double, Int)] = []
        var reasons: [String] = []
        for d in model.hosts.indices where d != model.location[v] {
            let host = model.hosts[d]
            switch host.availability {
            case .available: break
            case .evacuating: reasons.append("\(host.id): in maintenance"); continue
            case .unavailable(let why): reasons.append("\(host.id): \(why)"); continue
            }
            if let refusal = model.roomRefusal(placing: v, on: d) { reasons.append(refusal); continue }
            let broken = book.broken(placing: v, on: d, in: model)
            if let must = broken.first(where: \.must) {
                reasons.append("\(host.id): would break must rule \(must.name) (\(must.kind.rawValue))")
                continue
            }
            // Hosts are in id order in the model: the index breaks ties by id.
            let key = (model.imbalanceAfter(moving: v, to: d), model.loadsAfter(moving: v, to: d).destination, d)
            if broken.isEmpty { keepsAll.append(key) } else { keepsMust.append(key) }
        }
        let order: ((Double, Double, Int), (Double, Double, Int)) -> Bool = { $0 < $1 }
        if let best = keepsAll.min(by: order) ?? keepsMust.min(by: order) { return .success(best.2) }
        return .failure(.noHost(vm: vm.name, reasons: reasons))
    }

    /// A host's score for a new VM: lower is better.
    public struct HostScore: Sendable, Hashable {
        public var host: String
        /// Imbalance of the mesh with the VM on this host.
        public var imbalanceAfter: Double
        /// The host's load with the VM.
        public var loadAfter: Double
        /// "should" rules this host would break (placed here only if no host keeps them all).
        public var brokenShouldRules: [String]
    }

    /// Initial placement: every host that can take `vm` (memory, availability, "must" rules),
    /// best first: hosts keeping every "should" rule before the others, then by imbalance after,
    /// load after and id. `vm.host` is ignored. Throws `.noHost` with each host's refusal.
    public static func rank(_ vm: PlacementVM, in input: PlacementInput) throws(PlacementError) -> [HostScore] {
        let assessment = assess(vm, in: input)
        guard !assessment.scores.isEmpty else { throw .noHost(vm: vm.name, reasons: assessment.refusals) }
        return assessment.scores
    }

    /// Every host's verdict on a new VM: the hosts that can take it, best first (as `rank`), and
    /// why each other host cannot (one line each, naming the host).
    public struct Assessment: Sendable, Hashable {
        public var scores: [HostScore]
        public var refusals: [String]
    }

    /// `rank` with the refusals of the hosts left out, for saying why a VM went where it did.
    public static func assess(_ vm: PlacementVM, in input: PlacementInput) -> Assessment {
        var withVM = input
        // A placeholder host the VM is on before placement: it takes part in nothing.
        let limbo = "\u{0}limbo"
        var placed = vm
        placed.host = limbo
        withVM.hosts.append(PlacementHost(id: limbo, cpuCapacityMilli: 0, memoryCapacityMiB: 0, availability: .unavailable("not a host")))
        withVM.vms.append(placed)
        let model = LoadModel(withVM)
        let book = RuleBook(input.rules, vms: model.vms)
        guard let v = model.vms.firstIndex(where: { $0.id == vm.id && $0.host == limbo }) else { return Assessment(scores: [], refusals: []) }
        var scores: [HostScore] = []
        var reasons: [String] = []
        for d in model.hosts.indices where model.hosts[d].id != limbo {
            let host = model.hosts[d]
            switch host.availability {
            case .available: break
            case .evacuating: reasons.append("\(host.id): in maintenance"); continue
            case .unavailable(let why): reasons.append("\(host.id): \(why)"); continue
            }
            if let refusal = model.roomRefusal(placing: v, on: d) { reasons.append(refusal); continue }
            let broken = book.broken(placing: v, on: d, in: model)
            if let must = broken.first(where: \.must) {
                reasons.append("\(host.id): would break must rule \(must.name) (\(must.kind.rawValue))")
                continue
            }
            scores.append(HostScore(host: host.id, imbalanceAfter: model.imbalanceAfter(adding: v, to: d),
                                    loadAfter: model.loadAfter(adding: v, to: d),
                                    brokenShouldRules: broken.map(\.name)))
        }
        return Assessment(scores: scores.sorted {
            ($0.brokenShouldRules.isEmpty ? 0 : 1, $0.imbalanceAfter, $0.loadAfter, $0.host)
                < ($1.brokenShouldRules.isEmpty ? 0 : 1, $1.imbalanceAfter, $1.loadAfter, $1.host)
        }, refusals: reasons)
    }

    /// Why a paused VM stays where it is.
    static let pausedReason = "paused (an operator's `hostmesh vm pause`, or a failed resume: `vm show` says which): a migration would run it; `vm resume` or `vm stop` it"

    /// Why VM `vm` may not move to `host` now (nil: it may): an operator's move, such as a
    /// recommendation applied later (`drs apply`), is checked again against the view of the
    /// moment: the VM still runs where it did, the host takes VMs, has room, and every "must"
    /// rule holds with the VM there.
    public static func refusal(moving vm: String, from source: String, to host: String, in input: PlacementInput) -> String? {
        let model = LoadModel(input)
        let book = RuleBook(input.rules, vms: model.vms)
        guard let v = model.vms.firstIndex(where: { $0.id == vm }) else { return "the VM is not in the view any more" }
        guard model.vms[v].host == source else { return "the VM runs on \(model.vms[v].host) now" }
        guard !model.vms[v].busy else { return "the VM is busy (migrating, or not measured yet)" }
        guard !model.vms[v].paused else { return pausedReason }
        guard let d = model.hostIndex[host] else { return "\(host) is not a member" }
        switch model.hosts[d].availability {
        case .available: break
        case .evacuating: return "\(host) is in maintenance"
        case .unavailable(let why): return "\(host) takes no VM (\(why))"
        }
        if let refusal = model.roomRefusal(placing: v, on: d) { return refusal }
        if let must = book.broken(placing: v, on: d, in: model, mustOnly: true).first { return "it would break must rule \(must.name)" }
        return nil
    }

    /// Rules the placement in `input` breaks.
    public static func violations(_ input: PlacementInput) -> [RuleViolation] {
        let model = LoadModel(input)
        return RuleBook(input.rules, vms: model.vms).violations(in: model)
    }

    /// Host loads and the imbalance of `input`.
    public static func loads(_ input: PlacementInput) -> (loads: [String: Double], imbalance: Double) {
        let model = LoadModel(input)
        var loads: [String: Double] = [:]
        for h in model.hosts.indices { loads[model.hosts[h].id] = model.load(h) }
        return (loads, model.imbalance)
    }
}
