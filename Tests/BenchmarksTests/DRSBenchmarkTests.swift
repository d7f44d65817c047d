import Benchmarks
import Testing

/// A small run of `hostmesh bench drs`: the mesh converges, keeps its rules, moves no VM back
/// and forth, and ends about as balanced as the centralized greedy on the same loads.
@Suite struct DRSBenchmarkTests {
    @Test func smallMeshConvergesLikeTheCentralizedGreedy() {
        let row = DRSBenchmark.run(hosts: 20, vms: 400, threshold: 5, maxConcurrentMoves: 8, shifts: 2, maxRounds: 400, seed: 7)
        #expect(row.backAndForth == 0 && row.mustViolations == 0)
        #expect(row.convergeRounds < 400, "did not converge: \(row)")
        #expect(row.migrations > 0 && row.centralMigrations > 0)
        #expect(row.finalImbalance <= row.centralImbalance * 1.5 + 0.01, "\(row)")
    }
}
