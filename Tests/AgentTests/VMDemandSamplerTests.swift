@testable import Agent
import Testing

/// A VM's CPU demand from its vCPU threads' run + wait times (Protocol.md §10.2).
@Suite struct VMDemandSamplerTests {
    let start = ContinuousClock.now

    @Test func demandIsRunPlusWaitPerSecondSmoothed() {
        let first = VMDemandSampler.next(after: nil, reading: 0, at: start)
        #expect(first.milli == nil) // one sample: nothing measured yet
        let second = VMDemandSampler.next(after: first, reading: 800_000_000, at: start + .seconds(1))
        #expect(second.milli == 800)
        let third = VMDemandSampler.next(after: second, reading: 1_200_000_000, at: start + .seconds(2))
        #expect(third.milli == 600) // 0.5 × 400 + 0.5 × 800
        #expect(VMDemandSampler.parseSchedstat("123 456 7\n") == 579)
        #expect(VMDemandSampler.parseSchedstat("garbage") == nil)
    }

    /// An interval a migration overlapped (its contention inflates the wait time) moves the
    /// baseline only: the demand stays the last one measured without a migration, and the next
    /// clean interval is measured from the new baseline.
    @Test func anIntervalOverlappingAMigrationLeavesTheDemandAsItWas() {
        let first = VMDemandSampler.next(after: nil, reading: 0, at: start)
        let clean = VMDemandSampler.next(after: first, reading: 500_000_000, at: start + .seconds(1))
        #expect(clean.milli == 500)
        let migrating = VMDemandSampler.next(after: clean, reading: 2_400_000_000, at: start + .seconds(2), measures: false)
        #expect(migrating.milli == 500)
        #expect(migrating.cpuNanoseconds == 2_400_000_000)
        let after = VMDemandSampler.next(after: migrating, reading: 2_900_000_000, at: start + .seconds(3))
        #expect(after.milli == 500)
        // Never measured before the migration: still nothing measured, so the VM stays busy.
        let fresh = VMDemandSampler.next(after: VMDemandSampler.next(after: nil, reading: 0, at: start), reading: 9, at: start + .seconds(1), measures: false)
        #expect(fresh.milli == nil)
    }
}
