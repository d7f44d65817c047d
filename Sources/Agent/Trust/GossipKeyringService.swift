import GossipTransport
import ServiceLifecycle

/// Once the gossip runs, announces this host's gossip keys in its signed metadata; then, every
/// `interval`, sends the held keyring record to members whose metadata announces an older
/// version (Protocol.md §4.17), until graceful shutdown.
struct GossipKeyringService: Service {
    let keeper: GossipKeyringKeeper
    let membership: MembershipService
    let interval: Duration

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [keeper, membership, interval] in
            // Idempotent: binds if the membership service has not yet, else waits for it.
            _ = try await membership.start()
            await keeper.announce()
            while true {
                try await Task.sleep(for: interval)
                await keeper.catchUp()
            }
        }
    }
}
