@testable import Agent
import Membership
import Testing

@Suite struct CapacityGossipTests {
    let base = MemberMetadata(version: 3, cores: 8, memoryTotalBytes: 16 << 30, memoryFreeBytes: 8 << 30, runningVMs: 2,
                              cpuLoadMilli: 500, migrationsInFlight: 0, health: .ok)

    @Test func changesOthersActOnGoAtOnceAndDriftWaits() {
        var vms = base
        vms.runningVMs = 3
        var migrating = base
        migrating.migrationsInFlight = 1
        var failing = base
        failing.health = .unhealthy
        var drained = base
        drained.memoryFreeBytes -= (16 << 30) / 10 + 1 // more than a tenth of the 16 GiB total
        for next in [vms, migrating, failing, drained] {
            #expect(CapacityGossip.isStructural(next, from: base), "\(next)")
        }
        var loaded = base
        loaded.cpuLoadMilli = 650
        var freed = base
        freed.memoryFreeBytes += 65 << 20
        for next in [loaded, freed] {
            #expect(!CapacityGossip.isStructural(next, from: base) && CapacityGossip.hasDrifted(next, from: base), "\(next)")
        }
        // Below the thresholds: nothing worth telling.
        var noise = base
        noise.cpuLoadMilli = 590
        noise.memoryFreeBytes -= 60 << 20
        #expect(!CapacityGossip.isStructural(noise, from: base) && !CapacityGossip.hasDrifted(noise, from: base))
    }

    @Test func theDriftIntervalGrowsWithTheMeshAboveThirtyMembers() {
        #expect(CapacityGossip.driftInterval(members: 1) == .seconds(30))
        #expect(CapacityGossip.driftInterval(members: 30) == .seconds(30))
        #expect(CapacityGossip.driftInterval(members: 100) == .seconds(100))
        #expect(CapacityGossip.driftInterval(members: 1000) == .seconds(1000))
    }
}
