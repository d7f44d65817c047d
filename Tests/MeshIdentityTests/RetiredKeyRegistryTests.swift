import MeshIdentity
import NIOConcurrencyHelpers
import Testing

/// What an agent needs to keep retired keys across a restart (Protocol.md §3.9): every new
/// retirement reaches the recorder once, and a restored one is refused from the same time.
@Suite struct RetiredKeyRegistryTests {
    @Test func newRetirementsAreRecordedOnceAndRestoredWithTheirDeadline() throws {
        let key = try HostIdentity(hostID: "node-b").signingKey.publicKey
        let registry = RetiredKeyRegistry(graceSeconds: 10)
        let recorded = NIOLockedValueBox<[RetiredKeyRegistry.Retirement]>([])
        registry.record { retirement in recorded.withLockedValue { $0.append(retirement) } }
        let first = registry.retire(hostID: "node-b", key: key, now: 1_000)
        _ = registry.retire(hostID: "node-b", key: key, now: 2_000) // seen again: the earlier deadline stays, nothing recorded
        #expect(recorded.withLockedValue { $0 } == [first] && first.refusedFrom == 1_010)

        // A restarted agent: a fresh registry, the recorded retirement put back.
        let restarted = RetiredKeyRegistry(graceSeconds: 3_600)
        restarted.restore(first)
        #expect(restarted.retirement(hostID: "node-b", key: key)?.refusedFrom == 1_010)
        restarted.restore(RetiredKeyRegistry.Retirement(hostID: "node-b", key: key, refusedFrom: 5_000)) // a later deadline never wins
        #expect(restarted.retirement(hostID: "node-b", key: key)?.refusedFrom == 1_010)
        // A channel watching that key learns at once that it is retired (watch answers nil).
        #expect(restarted.watch(hostID: "node-b", key: key) { _ in } == nil)
    }
}
