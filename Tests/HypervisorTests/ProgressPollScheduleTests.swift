import Hypervisor
import Testing

/// The source's poll interval: long while a pass has far to go, the old 50 ms wherever the
/// convergence ladder may have to act (`ProgressPollSchedule`).
@Suite("Progress poll schedule")
struct ProgressPollScheduleTests {
    let schedule = ProgressPollSchedule()

    @Test func aLongPassIsPolledAtTheLongestInterval() {
        // 400 MiB left at 1000 Mbit/s (125 MB/s): 3.4 s to go; a quarter of it is past the cap.
        let sample = migrationSample(totalMs: 100, remaining: 400 << 20, mbps: 1000, iteration: 1)
        #expect(schedule.interval(after: sample) == .milliseconds(250))
    }

    @Test func theIntervalIsAQuarterOfWhatThePassStillNeeds() {
        // 50,000,000 bytes at 2000 Mbit/s (250 MB/s): 200 ms to go, polled in 50 ms; 100,000,000: 100 ms.
        #expect(schedule.interval(after: migrationSample(totalMs: 100, remaining: 50_000_000, mbps: 2000, iteration: 1)) == .milliseconds(50))
        #expect(schedule.interval(after: migrationSample(totalMs: 100, remaining: 100_000_000, mbps: 2000, iteration: 1)) == .milliseconds(100))
    }

    @Test func theEndOfAPassIsPolledAtTheShortestInterval() {
        let sample = migrationSample(totalMs: 100, remaining: 1 << 20, mbps: 2000, iteration: 4)
        #expect(schedule.interval(after: sample) == .milliseconds(50))
    }

    @Test func aGuestDirtyingHalfTheLinkIsWatchedClosely() {
        // 80,000 pages/s × 4 KiB = 328 MB/s dirtied against 250 MB/s sent: the ladder's case.
        let outrun = migrationSample(totalMs: 100, remaining: 400 << 20, dirtyPagesPerSecond: 80_000, mbps: 2000)
        #expect(schedule.interval(after: outrun) == .milliseconds(50))
        // 31,000 pages/s = 127 MB/s, just over half of 250 MB/s.
        let half = migrationSample(totalMs: 100, remaining: 400 << 20, dirtyPagesPerSecond: 31_000, mbps: 2000)
        #expect(schedule.interval(after: half) == .milliseconds(50))
        // 10,000 pages/s = 41 MB/s: far from it, the pass's length decides.
        let light = migrationSample(totalMs: 100, remaining: 400 << 20, dirtyPagesPerSecond: 10_000, mbps: 2000)
        #expect(schedule.interval(after: light) == .milliseconds(250))
    }

    @Test func outsideThePreCopyPassesTheShortestIntervalHolds() {
        for status in ["setup", "pre-switchover", "postcopy-active"] {
            #expect(schedule.interval(after: migrationSample(status: status, totalMs: 100, remaining: 400 << 20, mbps: 1000)) == .milliseconds(50),
                    "status \(status)")
        }
        // Before QEMU's first rate figure the pass's length is unknown.
        #expect(schedule.interval(after: migrationSample(totalMs: 1, remaining: 400 << 20, mbps: 0)) == .milliseconds(50))
    }
}
