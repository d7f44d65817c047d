import Foundation
@testable import Benchmarks
import Testing

/// The arithmetic behind `hostmesh bench`'s tables: medians, spreads and ratios.
struct BenchmarkSummaryTests {
    @Test func spreadOfOddAndEvenCounts() {
        #expect(Spread([5, 1, 3]).map { [$0.min, $0.median, $0.max] } == [1, 3, 5])
        // An even count takes the upper middle value: always one that was measured.
        #expect(Spread([4, 1, 3, 2])?.median == 3)
        #expect(Spread([7])?.median == 7)
        #expect(Spread([Int]()) == nil)
    }

    @Test func ratioNeverDividesByZero() {
        #expect(BenchmarkRatio.of(150, to: 100, floor: 1) == 1.5)
        #expect(BenchmarkRatio.of(5, to: 0, floor: 1) == 5)
        #expect(BenchmarkRatio.of(1, to: 0, floor: 0.001).isFinite)
    }

    @Test func comparisonTakesPerPathMedians() {
        func row(_ workload: String, _ path: String, total: Int64, down: Int64, mbS: Double) -> MigrationBenchmark.Row {
            MigrationBenchmark.Row(workload: workload, path: path, totalMs: total, downtimeMs: down, mbS: mbS, transferredBytes: 0)
        }
        let rows = [
            row("idle", "direct", total: 100, down: 10, mbS: 900), row("idle", "direct", total: 300, down: 30, mbS: 700),
            row("idle", "direct", total: 200, down: 20, mbS: 800),
            row("idle", "tunnel", total: 240, down: 35, mbS: 600), row("idle", "tunnel", total: 260, down: 25, mbS: 500),
            row("idle", "tunnel", total: 250, down: 30, mbS: 550),
            row("dirty", "direct", total: 9_999, down: 999, mbS: 1), // another workload: ignored
        ]
        let c = MigrationComparison(rows: rows, workload: "idle")
        #expect(c.direct == MigrationComparison.Medians(totalMs: 200, downtimeMs: 20, mbS: 800))
        #expect(c.tunnel == MigrationComparison.Medians(totalMs: 250, downtimeMs: 30, mbS: 550))
        #expect(c.totalRatio == 1.25)
        #expect(c.downtimeDeltaMs == 10)
        #expect(c.qemuTLS == nil && c.qemuTLSTotalRatio == nil)
    }

    @Test func aDirectRoundThatDidNotCompleteCountsInNoMedian() {
        var failed = MigrationBenchmark.Row(workload: "dirty", path: "direct", totalMs: 0, downtimeMs: 0, mbS: 0, transferredBytes: 0)
        failed.failed = "migration aborted: did not converge within 25015 ms"
        let rows = [
            failed,
            MigrationBenchmark.Row(workload: "dirty", path: "direct", totalMs: 26_000, downtimeMs: 2_000, mbS: 10, transferredBytes: 0),
            MigrationBenchmark.Row(workload: "dirty", path: "tunnel", totalMs: 8_000, downtimeMs: 500, mbS: 25, transferredBytes: 0),
        ]
        let c = MigrationComparison(rows: rows, workload: "dirty")
        #expect(c.direct == MigrationComparison.Medians(totalMs: 26_000, downtimeMs: 2_000, mbS: 10))
        #expect(c.totalRatio < 0.31)
    }

    @Test func comparisonWithoutRoundsReportsZeros() {
        let c = MigrationComparison(rows: [], workload: "idle")
        #expect(c.direct.totalMs == 0 && c.tunnel.totalMs == 0)
        #expect(c.totalRatio == 0)
    }
}

/// `hostmesh bench storage`'s write latencies: the p99 of a round and of pooled rounds, and what
/// the JSON carries of them.
struct StorageBenchmarkLatencyTests {
    @Test func theP99IsAMeasuredValueAndPoolingSteadiesIt() throws {
        // 50 writes, one slow: a round's p99 is that one write.
        let round = Array(repeating: 5_000, count: 49) + [80_000]
        #expect(StorageBenchmark.p99(round) == 80)
        // Ten such rounds pooled: 10 slow writes in 500, the p99 is the fifth-slowest value.
        let pooled = Array(repeating: round, count: 10).flatMap { $0 }
        #expect(StorageBenchmark.p99(pooled) == 80)
        let mixed = Array(repeating: 5_000, count: 490) + Array(repeating: 80_000, count: 4) + Array(repeating: 9_000, count: 6)
        #expect(StorageBenchmark.p99(mixed) == 9)
        #expect(StorageBenchmark.p99([]) == nil)
        // The JSON has how many writes a row's p99 is over, not the samples.
        var row = StorageBenchmark.Row(workload: "writing", path: "tunnel", totalMs: 1, downtimeMs: 1, diskMBs: 1,
                                       guestWriteP99Ms: 80, guestWriteP99QuietMs: 5, cpuSeconds: 1, cpuNsPerByte: 1)
        row.guestWritesMeasured = round.count
        row.guestWriteSamplesUs = round
        let json = String(decoding: try JSONEncoder().encode(row), as: UTF8.self)
        #expect(json.contains(#""guest_writes_measured":50"#) && !json.contains("5000"), "\(json)")
    }
}
