import Foundation
import Hypervisor
import Testing

/// A `query-migrate` answer with the fields the ladder reads (512 MiB guest, 4 KiB pages).
func migrationSample(status: String = "active", totalMs: Int64, remaining: Int64, dirtyPagesPerSecond: Int64 = 0,
                     mbps: Double = 2000, iteration: Int64 = 3, ram: Int64 = 512 << 20) -> MigrationProgress {
    let json = """
    {"status": "\(status)", "total-time": \(totalMs), "expected-downtime": 120, "setup-time": 3,
     "ram": {"total": \(ram), "remaining": \(remaining), "transferred": 100000000, "dirty-pages-rate": \(dirtyPagesPerSecond),
             "mbps": \(mbps), "dirty-sync-count": \(iteration), "page-size": 4096}}
    """
    return MigrationProgress(try! JSONDecoder().decode(MigrationInfo.self, from: Data(json.utf8)))
}

@Suite("Convergence ladder")
struct ConvergenceLadderTests {
    var policy: ConvergenceLadder.Policy {
        var policy = ConvergenceLadder.Policy()
        policy.stallPolls = 3
        policy.downtimeStepsMs = [500, 1000]
        policy.budgetBaseMs = 10_000
        policy.budgetPerGiBMs = 20_000
        return policy
    }

    /// Feeds `count` samples in which the guest dirties faster than the link (250 MB/s) drains.
    func feedOutrun(_ ladder: inout ConvergenceLadder, count: Int, from start: Int64) -> [ConvergenceLadder.Directive] {
        (0..<count).flatMap { i in
            ladder.observe(migrationSample(totalMs: start + Int64(i) * 100, remaining: 40 << 20,
                                           dirtyPagesPerSecond: 80_000, mbps: 2000))
        }
    }

    @Test func aConvergingMigrationIsLeftAlone() {
        var ladder = ConvergenceLadder(policy: policy)
        var directives: [ConvergenceLadder.Directive] = []
        var remaining: Int64 = 400 << 20
        for i in 0..<50 {
            remaining = remaining * 8 / 10
            directives += ladder.observe(migrationSample(totalMs: Int64(i) * 50, remaining: remaining, dirtyPagesPerSecond: 1000))
        }
        #expect(directives.isEmpty)
        #expect(ladder.rung == .precopy)
    }

    @Test func theFirstPassIsNeverJudged() {
        var ladder = ConvergenceLadder(policy: policy)
        let directives = (0..<20).flatMap { i in
            ladder.observe(migrationSample(totalMs: Int64(i) * 100, remaining: 300 << 20, dirtyPagesPerSecond: 90_000, iteration: 1))
        }
        #expect(directives.isEmpty)
    }

    @Test func withNoRemedyLeftAGuestThatOutrunsTheLinkIsCancelledAtOnce() {
        var bare = policy
        bare.allowThrottle = false
        var ladder = ConvergenceLadder(policy: bare)
        #expect(feedOutrun(&ladder, count: 3, from: 0) == [.setDowntimeLimit(ms: 500)])
        #expect(feedOutrun(&ladder, count: 3, from: 300) == [.setDowntimeLimit(ms: 1000)])
        let directives = feedOutrun(&ladder, count: 3, from: 600)
        guard case .cancel(let reason)? = directives.first, directives.count == 1 else {
            Issue.record("expected a cancel, got \(directives)")
            return
        }
        #expect(reason.contains("327 MB/s") && reason.contains("250 MB/s"), "\(reason)")
        #expect(ladder.rung == .aborted && ladder.abortCause == .outrun)
    }

    @Test func climbsDowntimeThenThrottleThenStops() {
        var ladder = ConvergenceLadder(policy: policy)
        #expect(feedOutrun(&ladder, count: 2, from: 0).isEmpty)
        #expect(feedOutrun(&ladder, count: 1, from: 200) == [.setDowntimeLimit(ms: 500)])
        #expect(feedOutrun(&ladder, count: 3, from: 300) == [.setDowntimeLimit(ms: 1000)])
        #expect(feedOutrun(&ladder, count: 3, from: 600) == [.startThrottling])
        // No post-copy allowed: the top of the ladder waits for the budget.
        #expect(feedOutrun(&ladder, count: 9, from: 900).isEmpty)
        #expect(ladder.history == [.raisedDowntime(500), .raisedDowntime(1000), .throttled])
    }

    @Test func postcopyOnlyWhenAllowed() {
        var allowed = policy
        allowed.allowPostcopy = true
        allowed.allowThrottle = false
        allowed.downtimeStepsMs = []
        var ladder = ConvergenceLadder(policy: allowed)
        #expect(feedOutrun(&ladder, count: 3, from: 0) == [.startPostcopy])
        #expect(ladder.rung == .postcopy)
        // Post-copy is never cancelled, even past the budget.
        let late = ladder.observe(migrationSample(status: "postcopy-active", totalMs: 999_999, remaining: 1 << 20))
        #expect(late.isEmpty)
    }

    @Test func budgetProportionalToRAMCancelsPrecopy() {
        var ladder = ConvergenceLadder(policy: policy)
        // 512 MiB: 10 s + 0.5 × 20 s = 20 s.
        #expect(policy.budgetMs(ramBytes: 512 << 20) == 20_000)
        // No gain since the start: the budget is all it gets.
        #expect(ladder.observe(migrationSample(totalMs: 0, remaining: 40 << 20)).isEmpty)
        #expect(ladder.observe(migrationSample(totalMs: 19_999, remaining: 40 << 20)).isEmpty)
        let directives = ladder.observe(migrationSample(totalMs: 20_001, remaining: 40 << 20))
        guard case let .cancel(reason)? = directives.first, directives.count == 1 else {
            Issue.record("expected a cancel, got \(directives)")
            return
        }
        #expect(reason.contains("20000 ms"))
        #expect(ladder.rung == .aborted)
        #expect(ladder.observe(migrationSample(totalMs: 30_000, remaining: 40 << 20)).isEmpty)
    }

    @Test func pastTheBudgetAMigrationThatStillGainsGoesOnUpToTheHardLimit() {
        var ladder = ConvergenceLadder(policy: policy)
        // 512 MiB: budget 20 s, grace 5 s, hard limit 60 s. A slow first pass: 2% less every 500 ms.
        var remaining: Int64 = 500 << 20
        var cancelledAt: Int64?
        for ms in stride(from: Int64(0), through: 70_000, by: 500) where cancelledAt == nil {
            remaining = remaining * 98 / 100
            if case .cancel(let reason)? = ladder.observe(migrationSample(totalMs: ms, remaining: remaining, iteration: 1)).first {
                cancelledAt = ms
                #expect(reason.contains("hard limit of 60000 ms"), "\(reason)")
            }
        }
        #expect(cancelledAt == 60_500)
    }

    @Test func pastTheBudgetAMigrationThatStoppedGainingIsCancelledOnceTheGraceIsOver() {
        var ladder = ConvergenceLadder(policy: policy)
        // Gains until 18 s, then hovers: cancelled at the first sample past 18 + 5 s.
        var cancelledAt: Int64?
        for ms in stride(from: Int64(0), through: 40_000, by: 500) where cancelledAt == nil {
            let remaining: Int64 = (400 << 20) - min(ms, 18_000) * 10_000
            if case .cancel(let reason)? = ladder.observe(migrationSample(totalMs: ms, remaining: remaining, iteration: 1)).first {
                cancelledAt = ms
                #expect(reason.contains("without gaining in the last 5000 ms"), "\(reason)")
            }
        }
        #expect(cancelledAt.map { $0 > 20_000 && $0 <= 23_500 } == true, "\(String(describing: cancelledAt))")
    }

    @Test func aStallWithoutNewLowsAlsoClimbs() {
        var ladder = ConvergenceLadder(policy: policy)
        // Dirty rate below throughput, but the bytes left hover at the same level.
        let directives = (0..<4).flatMap { i in
            ladder.observe(migrationSample(totalMs: Int64(i) * 100, remaining: (50 << 20) + Int64(i % 2) * 4096,
                                           dirtyPagesPerSecond: 10_000, mbps: 2000))
        }
        #expect(directives == [.setDowntimeLimit(ms: 500)])
    }

    @Test func aPauseBeforeSwitchoverIsNotJudged() {
        var ladder = ConvergenceLadder(policy: policy)
        let paused = migrationSample(status: "pre-switchover", totalMs: 999_999, remaining: 40 << 20, dirtyPagesPerSecond: 90_000)
        #expect(paused.phase == .preSwitchover)
        #expect(ladder.observe(paused).isEmpty)
        #expect(ladder.rung == .precopy)
    }

    @Test func progressDigestsQueryMigrate() {
        let sample = migrationSample(totalMs: 1234, remaining: 128 << 20, dirtyPagesPerSecond: 1000, mbps: 800, iteration: 4)
        #expect(sample.phase == .active)
        #expect(sample.percent == 75)
        #expect(sample.dirtyBytesPerSecond == 4_096_000)
        #expect(sample.throughputBytesPerSecond == 100_000_000)
        #expect(sample.iteration == 4)
        #expect(sample.downtimeMs == 120)
        let done = migrationSample(status: "completed", totalMs: 1000, remaining: 0)
        #expect(done.phase == .completed && done.percent == 100)
        #expect(done.averageMBPerSecond == 100)
    }

    @Test func settingsHaveSaneDefaultsAndMatchingCapabilities() {
        let settings = MigrationSettings()
        #expect(settings.sourceParameters.maxBandwidth == 10 << 30)
        #expect(settings.sourceParameters.downtimeLimitMs == 300)
        #expect(settings.sourceParameters.maxCPUThrottle == 1)
        #expect(settings.capabilities[.multifd] == false)
        #expect(settings.capabilities[.xbzrle] == false)
        #expect(settings.capabilities[.autoConverge] == true)
        #expect(settings.activeThrottle.maxCPUThrottle == 99)
        var multifd = settings
        multifd.multifdChannels = 4
        #expect(multifd.destinationParameters.multifdChannels == 4)
        #expect(multifd.capabilities[.multifd] == true)
    }
}
