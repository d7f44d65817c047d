import Placement
import Testing

/// Fixtures: hosts of 4 cores and 16 GiB; VMs named by their id.
func host(_ id: String, cores: Int = 4, memoryMiB: Int = 16_384, _ availability: PlacementHost.Availability = .available) -> PlacementHost {
    PlacementHost(id: id, cpuCapacityMilli: cores * 1000, memoryCapacityMiB: memoryMiB, availability: availability)
}

func vm(_ id: String, on host: String, cpu: Int = 1000, memoryMiB: Int = 512, movable: Bool = true) -> PlacementVM {
    PlacementVM(id: id, name: id, host: host, cpuDemandMilli: cpu, memoryMiB: memoryMiB, movable: movable)
}

func apply(_ moves: [PlacementMove], to vms: [PlacementVM]) -> [PlacementVM] {
    var vms = vms
    for move in moves { if let i = vms.firstIndex(where: { $0.id == move.vm }) { vms[i].host = move.to } }
    return vms
}

@Suite struct PlacementTests {
    let three = [host("a"), host("b"), host("c")]

    @Test func loadIsTheScarcerResourceAndImbalanceIsTheirDeviation() {
        // a: 2 of 4 cores (0.5), 4 GiB of 16 (0.25) → 0.5; b: 8 GiB of 16 → 0.5; c: idle.
        let input = PlacementInput(hosts: three, vms: [vm("x", on: "a", cpu: 2000, memoryMiB: 4096), vm("y", on: "b", cpu: 0, memoryMiB: 8192)])
        let (loads, imbalance) = Placement.loads(input)
        #expect(loads == ["a": 0.5, "b": 0.5, "c": 0])
        // mean 1/3; deviation sqrt(((1/6)² × 2 + (1/3)²) / 3) = sqrt(1/18)
        #expect(abs(imbalance - (1.0 / 18).squareRoot()) < 1e-12)
    }

    @Test func balancesAHotHostAndStopsAtTheTarget() {
        let vms = (1...6).map { vm("v\($0)", on: "a") }
        let plan = Placement.plan(PlacementInput(hosts: three, vms: vms), tolerance: BalanceTolerance(threshold: 3), maxMoves: 10)
        #expect(plan.moves.count == 4) // two VMs per host
        #expect(plan.moves.allSatisfy { $0.reason == .balance && $0.from == "a" && $0.imbalanceAfter < $0.imbalanceBefore })
        #expect(plan.loadsAfter == ["a": 0.5, "b": 0.5, "c": 0.5])
        #expect(plan.imbalanceAfter < 1e-9)
        // Applied, the same input proposes nothing: a balanced mesh is left alone.
        let again = Placement.plan(PlacementInput(hosts: three, vms: apply(plan.moves, to: vms)), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        #expect(again.moves.isEmpty)
    }

    @Test func equalInputsGiveEqualPlansWhateverTheOrder() {
        let vms = (1...9).map { vm("v\($0)", on: ["a", "a", "b"][$0 % 3], cpu: 300 * $0) }
        let one = Placement.plan(PlacementInput(hosts: three, vms: vms), tolerance: BalanceTolerance(threshold: 4), maxMoves: 5)
        let other = Placement.plan(PlacementInput(hosts: three.reversed(), vms: vms.reversed()), tolerance: BalanceTolerance(threshold: 4), maxMoves: 5)
        #expect(one == other)
        #expect(!one.moves.isEmpty)
    }

    @Test func thresholdsGateBalancing() {
        // a 0.4, b 0.25, c 0.25: imbalance 0.071, under threshold 3's target (0.10), over 4's (0.05).
        let vms = (1...3).map { vm("a\($0)", on: "a", cpu: 500) } + [vm("small", on: "a", cpu: 100)]
            + (1...2).map { vm("b\($0)", on: "b", cpu: 500) } + (1...2).map { vm("c\($0)", on: "c", cpu: 500) }
        let input = PlacementInput(hosts: three, vms: vms)
        #expect(abs(Placement.loads(input).imbalance - 0.005.squareRoot()) < 1e-9)
        #expect(Placement.plan(input, tolerance: BalanceTolerance(threshold: 1), maxMoves: 10).moves.isEmpty) // mandatory only
        #expect(Placement.plan(input, tolerance: BalanceTolerance(threshold: 3), maxMoves: 10).moves.isEmpty)
        // Threshold 4 makes one move from a to b (the small VM or a 500 one: both leave 0.054),
        // after which no move gains enough.
        let plan = Placement.plan(input, tolerance: BalanceTolerance(threshold: 4), maxMoves: 10)
        #expect(plan.moves.count == 1 && plan.moves.first?.from == "a" && plan.moves.first?.to == "b", "\(plan.moves)")
        #expect(abs(plan.imbalanceAfter - 0.0029166666.squareRoot()) < 1e-6)
    }

    @Test func heldVMsStayAndAMoveMayOvershootWhenTheMeshGains() {
        let vms = [vm("big", on: "a", cpu: 3000), vm("held", on: "a", cpu: 500, movable: false)]
        let plan = Placement.plan(PlacementInput(hosts: [host("a"), host("b")], vms: vms), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        // a 0.875, b 0 → a 0.125, b 0.75: b ends above a, but the loads are closer; held stays.
        #expect(plan.moves.map(\.vm) == ["big"])
        // From there the move back has the opposite goodness: nothing moves.
        let after = Placement.plan(PlacementInput(hosts: [host("a"), host("b")], vms: apply(plan.moves, to: vms)), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        #expect(after.moves.isEmpty)
        // A VM that is most of its host's load, alone: moving it only swaps the hosts' loads.
        let alone = Placement.plan(PlacementInput(hosts: [host("a"), host("b")], vms: [vm("solo", on: "a", cpu: 3000)]), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        #expect(alone.moves.isEmpty)
    }

    @Test func hostsInFluxTakeNoPartInBalancing() {
        var vms = (1...4).map { vm("a\($0)", on: "a") } + [vm("arriving", on: "b", cpu: 0)]
        vms[4].busy = true
        // b has a VM not measured yet, c a migration under way: a has nowhere to shed load.
        var hosts = three
        hosts[2].settling = true
        #expect(Placement.plan(PlacementInput(hosts: hosts, vms: vms), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10).moves.isEmpty)
        // Once b's VM is measured, a gives to b (c still settling); a maintenance evacuation ignores both.
        vms[4].busy = false
        let plan = Placement.plan(PlacementInput(hosts: hosts, vms: vms), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        #expect(!plan.moves.isEmpty && plan.moves.allSatisfy { $0.to == "b" })
        hosts[0].availability = .evacuating
        vms[4].busy = true
        let evacuation = Placement.plan(PlacementInput(hosts: hosts, vms: vms), tolerance: BalanceTolerance(threshold: 1), maxMoves: 10)
        #expect(evacuation.moves.count == 4 && Set(evacuation.moves.map(\.to)) == ["b", "c"])
    }

    @Test func costOfABigVMMustBePaidFor() {
        // Either VM alone would even out a (0.3) and b (0): a goodness of 2 × 0.15² = 0.045.
        // Copying 80 GiB costs 0.01 + 80 × 0.001 = 0.09, more than that; the small one 0.0105.
        let hosts = [host("a", memoryMiB: 1 << 20), host("b", memoryMiB: 1 << 20)]
        let vms = [vm("small", on: "a", cpu: 600, memoryMiB: 512), vm("huge", on: "a", cpu: 600, memoryMiB: 81_920)]
        let plan = Placement.plan(PlacementInput(hosts: hosts, vms: vms), tolerance: BalanceTolerance(threshold: 3), maxMoves: 10)
        #expect(plan.moves.map(\.vm) == ["small"])
    }

    @Test func maintenanceEvacuatesEveryVMKeepingMustRulesAndNamesTheOneThatCannotGo() {
        let hosts = [host("a", .evacuating), host("b"), host("c")]
        let vms = [vm("w1", on: "a"), vm("w2", on: "a"), vm("w3", on: "a"), vm("db1", on: "b"), vm("db2", on: "c"), vm("db3", on: "a")]
        let rules = [PlacementRule(name: "dbs-apart", kind: .antiAffinity, vms: ["db1", "db2", "db3"], must: true)]
        let plan = Placement.plan(PlacementInput(hosts: hosts, vms: vms, rules: rules), tolerance: BalanceTolerance(threshold: 1), maxMoves: 10)
        #expect(Set(plan.moves.map(\.vm)) == ["w1", "w2", "w3"])
        #expect(plan.moves.allSatisfy { $0.reason == .evacuation && $0.to != "a" })
        #expect(plan.unplaced.map(\.vmName) == ["db3"])
        #expect(plan.unplaced.first?.reason.contains("would break must rule dbs-apart") == true)
        #expect(plan.violationsAfter.isEmpty)
        // The evacuation spreads: not all three on one host.
        #expect(Set(plan.moves.map(\.to)).count == 2)
    }

    /// A VM paused by an operator is never moved (its destination would run it): balancing
    /// leaves it, an evacuation reports it unplaced with the reason, and an operator's move is refused.
    @Test func aPausedVMStaysAndAnEvacuationSaysWhy() {
        var paused = vm("p", on: "a")
        paused.paused = true
        paused.movable = false
        let hosts = [host("a", .evacuating), host("b")]
        let plan = Placement.plan(PlacementInput(hosts: hosts, vms: [paused, vm("w", on: "a")]), tolerance: BalanceTolerance(threshold: 3), maxMoves: 10)
        #expect(plan.moves.map(\.vm) == ["w"])
        #expect(plan.unplaced.map(\.vmName) == ["p"])
        #expect(plan.unplaced.first?.reason.contains("vm resume") == true)
        let balancing = Placement.plan(PlacementInput(hosts: three, vms: [paused] + (1...5).map { vm("v\($0)", on: "b") }),
                                       tolerance: BalanceTolerance(threshold: 3), maxMoves: 10)
        #expect(!balancing.moves.contains { $0.vm == "p" })
        #expect(!balancing.moves.isEmpty) // its host is not held out of balancing, as a busy VM's would be
        #expect(Placement.refusal(moving: "p", from: "a", to: "c", in: PlacementInput(hosts: three, vms: [paused]))?.contains("paused") == true)
    }

    @Test func maxMovesLimitsAMaintenanceRoundButNotTheReport() {
        let hosts = [host("a", .evacuating), host("b")]
        let vms = (1...5).map { vm("v\($0)", on: "a") } + [vm("big", on: "a", memoryMiB: 20_000)]
        let plan = Placement.plan(PlacementInput(hosts: hosts, vms: vms), tolerance: BalanceTolerance(threshold: 3), maxMoves: 2)
        #expect(plan.moves.count == 2)
        #expect(plan.unplaced.map(\.vmName) == ["big"])
        #expect(plan.unplaced.first?.reason.contains("MiB free, the VM needs 20000") == true)
    }

    @Test func brokenMustRulesAreFixedAndShouldRulesKeptWhileBalancing() {
        let vms = [vm("x", on: "a", cpu: 500), vm("y", on: "a", cpu: 500), vm("z", on: "a", cpu: 2000), vm("pinned", on: "a", cpu: 500)]
        let rules = [
            PlacementRule(name: "apart", kind: .antiAffinity, vms: ["x", "y"], must: true),
            PlacementRule(name: "stay", kind: .runOn, vms: ["pinned"], hosts: ["a"], must: false),
            PlacementRule(name: "not-c", kind: .notOn, vms: ["z"], hosts: ["c"], must: true),
        ]
        let plan = Placement.plan(PlacementInput(hosts: three, vms: vms, rules: rules), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10)
        #expect(plan.violationsBefore.map(\.rule.name) == ["apart"])
        #expect(plan.moves.first?.reason == .rule("apart") && plan.moves.first?.vm == "y")
        #expect(plan.violationsAfter.isEmpty)
        #expect(!plan.moves.contains { $0.vm == "pinned" })
        #expect(!plan.moves.contains { $0.vm == "z" && $0.to == "c" })
    }

    @Test func initialPlacementRanksHostsAndExplainsRefusals() throws {
        let hosts = [host("a"), host("b"), host("c", .evacuating), host("d", .unavailable("dead"))]
        let vms = [vm("x", on: "a", cpu: 2000), vm("web1", on: "b", cpu: 100)]
        let rules = [PlacementRule(name: "webs", kind: .antiAffinity, vms: ["web1", "web2"], must: true)]
        let input = PlacementInput(hosts: hosts, vms: vms, rules: rules)
        // Without the rule b (lighter) would win; the must rule leaves only a.
        #expect(try Placement.rank(vm("web2", on: "", cpu: 500), in: input).map(\.host) == ["a"])
        #expect(try Placement.rank(vm("other", on: "", cpu: 500), in: input).map(\.host) == ["b", "a"])
        #expect(throws: PlacementError.self) { try Placement.rank(vm("web2", on: "", memoryMiB: 32_768), in: input) }
        do {
            _ = try Placement.rank(vm("web2", on: "", cpu: 10, memoryMiB: 16_000), in: input)
            Issue.record("a 16,000 MiB VM was placed")
        } catch {
            let text = "\(error)"
            #expect(text.contains("c: in maintenance") && text.contains("d: dead") && text.contains("b: 15872 MiB free, the VM needs 16000"), "\(text)")
        }
    }

    @Test func badAndContradictoryRulesAreRefused() {
        #expect(throws: PlacementError.self) { try PlacementRule(name: "one", kind: .antiAffinity, vms: ["x"], must: true).validate() }
        #expect(throws: PlacementError.self) { try PlacementRule(name: "nohost", kind: .runOn, vms: ["x"], must: true).validate() }
        #expect(throws: PlacementError.self) { try PlacementRule(name: "bad name!", kind: .affinity, vms: ["x", "y"], must: true).validate() }
        let together = PlacementRule(name: "together", kind: .affinity, vms: ["x", "y", "z"], must: true)
        let apart = PlacementRule(name: "apart", kind: .antiAffinity, vms: ["y", "z"], must: true)
        #expect(throws: PlacementError.self) { try RuleConflicts.check(apart, against: [together]) }
        var soft = apart
        soft.must = false
        #expect(throws: Never.self) { try RuleConflicts.check(soft, against: [together]) }
        let onA = PlacementRule(name: "on-a", kind: .runOn, vms: ["x"], hosts: ["a"], must: true)
        #expect(throws: PlacementError.self) { try RuleConflicts.check(PlacementRule(name: "on-b", kind: .runOn, vms: ["x"], hosts: ["b"], must: true), against: [onA]) }
        #expect(throws: PlacementError.self) { try RuleConflicts.check(PlacementRule(name: "not-a", kind: .notOn, vms: ["x"], hosts: ["a"], must: true), against: [onA]) }
        #expect(throws: PlacementError.self) { try DRSSettings(automation: .full, threshold: 6).validate() }
    }

    @Test func eachAgentExecutesOnlyItsOwnMovesWithinTheMeshBudget() {
        let vms = (1...4).map { vm("a\($0)", on: "a") } + (1...4).map { vm("b\($0)", on: "b") }
        let view = PlacementInput(hosts: three + [host("d")], vms: vms)
        let settings = DRSSettings(automation: .full, threshold: 3)
        let decisions = ["a", "b", "c", "d"].map {
            DRSRound.decide(DRSRound.Input(view: view, settings: settings, localHost: $0, migrationsInFlight: 1, maxConcurrentMoves: 3))
        }
        // Every agent has the same plan; together they start its first 3 - 1 = 2 moves, each once.
        #expect(Set(decisions.map(\.plan)).count == 1)
        let started = decisions.flatMap(\.execute)
        #expect(started == Array(decisions[0].plan.moves.prefix(2)))
        #expect(decisions[2].execute.isEmpty && decisions[3].execute.isEmpty)
        // Manual: recommended, not executed; a mandatory move is executed anyway.
        var manual = settings
        manual.automation = .manual
        let recommended = DRSRound.decide(DRSRound.Input(view: view, settings: manual, localHost: "a", migrationsInFlight: 0, maxConcurrentMoves: 3))
        #expect(recommended.execute.isEmpty && !recommended.recommendations.isEmpty)
        var evacuate = view
        evacuate.hosts[0].availability = .evacuating
        let mandatory = DRSRound.decide(DRSRound.Input(view: evacuate, settings: manual, localHost: "a", migrationsInFlight: 0, maxConcurrentMoves: 3))
        #expect(mandatory.execute.count == 3 && mandatory.execute.allSatisfy { $0.reason == .evacuation })
    }

    @Test func replicatedRecordsConvergeWhateverTheOrderAndKeepTombstones() {
        var a = ReplicatedRecords<String>(), b = ReplicatedRecords<String>()
        let first = a.write("rule/x", "v1", writer: "a")
        #expect(b.merge([first]) == [first])
        let deleted = b.write("rule/x", nil, writer: "b")
        let concurrent = a.write("rule/x", "v2", writer: "a") // same version 2 as b's deletion: "b" > "a" wins
        #expect(deleted.version == concurrent.version)
        _ = a.merge([deleted])
        _ = b.merge([concurrent])
        #expect(a == b && a.live.isEmpty && a.all.count == 1)
        // An old write arriving late changes nothing.
        #expect(a.merge([first]).isEmpty)
        // A later write resurrects the key everywhere.
        let again = a.write("rule/x", "v3", writer: "a")
        #expect(again.version == 3 && b.merge([again]) == [again] && b.live == ["rule/x": "v3"])
    }
}
