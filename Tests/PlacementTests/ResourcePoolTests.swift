import Placement
import Testing

/// Resource pools and per-VM allocations (Protocol.md §10.9): entitlements, admission, overrides.
@Suite struct ResourcePoolTests {
    let three = [host("a"), host("b"), host("c")]

    @Test func entitlementIsDemandRaisedToTheReservationAndCappedByTheLimit() {
        let claims = [
            Entitlements.Claim(demand: 300, allocation: ResourceAllocation(reservation: 500)),          // raised to 500
            Entitlements.Claim(demand: 3000, allocation: ResourceAllocation(limit: 1200)),              // capped at 1200
            Entitlements.Claim(demand: 800, allocation: ResourceAllocation(reservation: 100, limit: 2000)), // as demanded
        ]
        #expect(Entitlements.compute(claims, pools: [nil, nil, nil], allocations: [:]) == [500, 1200, 800])
    }

    @Test func aPoolLimitIsDividedByShareAboveEachReservation() {
        // Pool limit 2000; demands 2000 each. x reserves 400; shares 1000 : 3000.
        // Floors 400 and 0, 1600 left: x gets 400 (1/4), y 1200 (3/4) → 800 and 1200.
        let claims = [Entitlements.Claim(demand: 2000, allocation: ResourceAllocation(reservation: 400, shares: 1000)),
                      Entitlements.Claim(demand: 2000, allocation: ResourceAllocation(shares: 3000)),
                      Entitlements.Claim(demand: 2000, allocation: .unreserved)]
        let out = Entitlements.compute(claims, pools: ["p", "p", nil], allocations: ["p": ResourceAllocation(limit: 2000)])
        #expect(out == [800, 1200, 2000])
        #expect(out[0] + out[1] <= 2000)
    }

    @Test func aMemberBelowItsShareHandsTheRestToTheOthers() {
        // Limit 3000 by equal shares would be 1000 each, but x demands only 200: y and z split the rest.
        let claims = [200, 5000, 5000].map { Entitlements.Claim(demand: $0, allocation: .unreserved) }
        #expect(Entitlements.compute(claims, pools: ["p", "p", "p"], allocations: ["p": ResourceAllocation(limit: 3000)]) == [200, 1400, 1400])
        // Under the limit, nobody is cut.
        #expect(Entitlements.compute(claims, pools: ["p", "p", "p"], allocations: ["p": ResourceAllocation(limit: 20_000)]) == [200, 5000, 5000])
    }

    @Test func balancingWeighsHostsByEntitlementNotRawDemand() {
        // Six VMs each demanding 1 core on a; in pool capped at 1.2 cores in all they weigh 0.2 each:
        // a's load is 0.3 of 4 cores, not 1.5, and the threshold-3 target (0.1) is hardly exceeded.
        var vms = (1...6).map { vm("v\($0)", on: "a") }
        for i in vms.indices { vms[i].pool = "capped" }
        let capped = PlacementInput(hosts: three, vms: vms, pools: [ResourcePool(name: "capped", cpu: ResourceAllocation(limit: 1200))])
        #expect(abs(Placement.loads(capped).loads["a"]! - 0.3) < 1e-9)
        let uncapped = PlacementInput(hosts: three, vms: vms)
        #expect(Placement.loads(uncapped).loads["a"]! == 1.5)
        #expect(Placement.plan(uncapped, tolerance: BalanceTolerance(threshold: 3), maxMoves: 10).moves.count
                > Placement.plan(capped, tolerance: BalanceTolerance(threshold: 3), maxMoves: 10).moves.count)
    }

    @Test func measuredMemoryWeighsInsteadOfConfiguredRAM() {
        // 8 GiB configured but 1 GiB used: a's memory load is 1/16, not 1/2.
        var big = vm("big", on: "a", cpu: 0, memoryMiB: 8192)
        big.memoryDemandMiB = 1024
        #expect(Placement.loads(PlacementInput(hosts: three, vms: [big])).loads["a"]! == 1024.0 / 16_384)
        // Its reservation still counts: reserving 4 GiB makes it weigh 4 GiB.
        big.memory = ResourceAllocation(reservation: 4096)
        #expect(Placement.loads(PlacementInput(hosts: three, vms: [big])).loads["a"]! == 4096.0 / 16_384)
    }

    @Test func aReservationThatDoesNotFitIsRefusedByPlacementAndMoves() throws {
        // b has 4 cores and already reserves 3.5 of them; a VM reserving 1 core can only go to c.
        var holder = vm("holder", on: "b", cpu: 100)
        holder.cpu = ResourceAllocation(reservation: 3500)
        var new = vm("new", on: "", cpu: 100)
        new.cpu = ResourceAllocation(reservation: 1000)
        let view = PlacementInput(hosts: [host("b"), host("c")], vms: [holder])
        let ranking = try Placement.rank(new, in: view)
        #expect(ranking.map(\.host) == ["c"])
        // Nowhere at all: refused with each host's reason.
        new.cpu = ResourceAllocation(reservation: 4500)
        #expect(throws: PlacementError.self) { try Placement.rank(new, in: view) }
        do { _ = try Placement.rank(new, in: view) } catch {
            #expect(error.description.contains("b: 500 thousandths of a core unreserved, the VM reserves 4500"))
        }
        // A move to b of a VM reserving a core is refused too.
        var mover = vm("mover", on: "c")
        mover.cpu = ResourceAllocation(reservation: 1000)
        let refusal = Placement.refusal(moving: "mover", from: "c", to: "b", in: PlacementInput(hosts: [host("b"), host("c")], vms: [holder, mover]))
        #expect(refusal?.contains("unreserved") == true)
    }

    @Test func badPoolsAndAllocationsAreRefusedWithTheReason() {
        let view = PlacementInput(hosts: three, vms: [], pools: [ResourcePool(name: "web", cpu: ResourceAllocation(reservation: 500, limit: 2000))])
        func reason(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        #expect(reason { try ResourceAdmission.check(pool: ResourcePool(name: "p", cpu: ResourceAllocation(reservation: 2000, limit: 1000)), in: view) }
            .contains("limit 1000 thousandths of a core is below its reservation 2000"))
        #expect(reason { try ResourceAdmission.check(pool: ResourcePool(name: "p", memory: ResourceAllocation(reservation: 60_000)), in: view) }
            .contains("the mesh has 49152 MiB unreserved"))
        #expect(reason { try ResourceAdmission.check(pool: ResourcePool(name: "bad/name"), in: view) }.contains("pool name"))
        #expect(reason { try ResourceAdmission.check(vm: "x", memoryMiB: 256, pool: nil, cpu: ResourceAllocation(reservation: 5000), memory: .unreserved, in: view) }
            .contains("more than any host has (the largest has 4000)"))
        #expect(reason { try ResourceAdmission.check(vm: "x", memoryMiB: 256, pool: "nosuch", cpu: .unreserved, memory: .unreserved, in: view) }
            .contains("no resource pool named nosuch (pools: web)"))
        #expect(reason { try ResourceAdmission.check(vm: "x", memoryMiB: 256, pool: "web", cpu: ResourceAllocation(reservation: 2500), memory: .unreserved, in: view) }
            .contains("above the pool's limit of 2000"))
        #expect(reason { try ResourceAdmission.check(vm: "x", memoryMiB: 256, pool: nil, cpu: .unreserved, memory: ResourceAllocation(reservation: 512), in: view) }
            .contains("reserve at most its RAM"))
        #expect(reason { try ResourceAdmission.check(vm: "x", memoryMiB: 256, pool: "web", cpu: ResourceAllocation(reservation: 100), memory: .unreserved, in: view) }.isEmpty)
        // A pool's limit may not fall below what its VMs reserve.
        var member = vm("m", on: "a")
        member.pool = "web"
        member.cpu = ResourceAllocation(reservation: 1500)
        let withMember = PlacementInput(hosts: three, vms: [member], pools: view.pools)
        #expect(reason { try ResourceAdmission.check(pool: ResourcePool(name: "web", cpu: ResourceAllocation(limit: 1000)), in: withMember) }
            .contains("below what its VMs already reserve (1500"))
    }

    @Test func aVMsOwnThresholdAndAutomationOverrideTheMesh() {
        var vms = (1...6).map { vm("v\($0)", on: "a") }
        // Threshold 1 for every VM: none is moved for balance, whatever the mesh's threshold.
        for i in vms.indices { vms[i].threshold = 1 }
        #expect(Placement.plan(PlacementInput(hosts: three, vms: vms), tolerance: BalanceTolerance(threshold: 5), maxMoves: 10).moves.isEmpty)
        // Automation: under a manual mesh, a VM set to full is moved by its owner; the others are recommended.
        vms = (1...6).map { vm("v\($0)", on: "a") }
        for i in vms.indices { vms[i].automation = .manual }
        vms[0].automation = .full
        vms[1].automation = .full
        let decision = DRSRound.decide(DRSRound.Input(view: PlacementInput(hosts: three, vms: vms), settings: DRSSettings(automation: .manual, threshold: 3),
                                                      localHost: "a", migrationsInFlight: 0, maxConcurrentMoves: 10))
        #expect(!decision.execute.isEmpty)
        #expect(decision.execute.allSatisfy { ["v1", "v2"].contains($0.vm) })
        #expect(decision.recommendations.allSatisfy { !["v1", "v2"].contains($0.vm) })
    }
}
