import GossipTransport
import Testing

@Suite struct JoinRetryPolicyTests {
    @Test func backoffDoublesUpToTheCap() {
        let policy = JoinRetryPolicy(maxAttempts: 5, initialBackoff: .seconds(1), maxBackoff: .seconds(5))
        #expect((1...5).map { policy.backoff(afterAttempt: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
    }
}
