import Foundation
import Benchmarks
import Membership
import Testing

@Suite("Gossip benchmark")
struct GossipBenchmarkTests {
    @Test("rows for 10 and 100 members are complete, traffic per member is flat, JSON keys match the CLI contract")
    func smallBenchmark() throws {
        let seed: UInt64 = 0x5EED_00B0
        print("seed \(seed): gossip benchmark at 10 and 100 members")
        let rows = GossipBenchmark.run(memberCounts: [10, 100], seed: seed)
        print(GossipBenchmark.table(rows))
        for row in rows {
            #expect(row.firstSuspectSeconds != nil && row.allDeadSeconds != nil && row.joinAllSeconds != nil, "seed \(seed): \(row)")
            #expect(row.allDeadSeconds.map { $0 <= 20 } == true, "seed \(seed): \(row)")
            #expect(row.joinAllSeconds.map { $0 <= 10 } == true, "seed \(seed): \(row)")
            #expect(row.revocationAllSeconds.map { $0 <= 10 } == true, "seed \(seed): \(row)")
        }
        let ratio = rows[1].bytesPerMemberPerSecond / rows[0].bytesPerMemberPerSecond
        #expect(ratio > 0.8 && ratio < 1.25, "seed \(seed): bytes per member grew \(ratio)x from 10 to 100 members")

        let json = try JSONEncoder().encode(GossipBenchmarkReport(rows: rows))
        let object = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        let first = (object?["rows"] as? [[String: Any]])?.first
        #expect(Set(first?.keys.map { $0 } ?? []) == [
            "members", "first_suspect_s", "all_dead_s", "join_all_s", "bytes_per_member_s", "revocation_all_s",
            "churn_bytes_per_member_s", "unsigned",
        ])
        // Signed membership (§4.16): at most 2x the unsigned traffic per member, steady and under churn.
        for row in rows {
            let unsigned = try #require(row.unsigned, "seed \(seed)")
            #expect(row.bytesPerMemberPerSecond <= 2 * unsigned.bytesPerMemberPerSecond, "seed \(seed): \(row)")
            let churn = try #require(row.churnBytesPerMemberPerSecond), unsignedChurn = try #require(unsigned.churnBytesPerMemberPerSecond)
            #expect(churn <= 2 * unsignedChurn, "seed \(seed): \(row)")
        }
    }

    /// Every member changing its metadata every 3 s (an agent's most, Protocol.md §4.6): the
    /// changes compete with suspicions for each datagram's piggyback room, and a crash must still
    /// be known by all within the same bound. Virtual time: the figures replay exactly.
    @Test func aCrashIsStillKnownByAllWhileEveryMemberChangesItsMetadata() throws {
        let seed: UInt64 = 0x5EED_00B1
        let quiet = GossipBenchmark.measure(members: 100, seed: seed)
        let churning = GossipBenchmark.measure(members: 100, seed: seed, metadataEvery: .seconds(3))
        print(GossipBenchmark.table([quiet, churning]))
        #expect(churning.metadataEverySeconds == 3 && quiet.metadataEverySeconds == nil)
        // The churn was real: it costs traffic.
        #expect(churning.bytesPerMemberPerSecond > quiet.bytesPerMemberPerSecond * 1.2, "seed \(seed): \(quiet) vs \(churning)")
        let dead = try #require(churning.allDeadSeconds, "seed \(seed): the crash was never known by all: \(churning)")
        #expect(dead <= 20, "seed \(seed): \(churning)")
        #expect(churning.joinAllSeconds.map { $0 <= 10 } == true, "seed \(seed): \(churning)")
        #expect(churning.revocationAllSeconds.map { $0 <= 10 } == true, "seed \(seed): \(churning)")
    }
}
