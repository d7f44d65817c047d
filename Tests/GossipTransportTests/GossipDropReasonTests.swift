import GossipTransport
import Testing

@Suite struct GossipDropReasonTests {
    @Test func reasonsHaveDistinctNames() {
        let names = Set(GossipDropReason.allCases.map(\.description))
        #expect(names.count == GossipDropReason.allCases.count)
    }
}
