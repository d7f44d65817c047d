import GossipTransport
import Logging
import ServiceLifecycle

/// Feeds the stored federation grants into gossip once the membership runs, enforces every newer
/// grant the mesh brings (`FederationKeeper.learned`), and once a second closes the
/// cross-domain channels whose grant expired, until the gossip service stops or a graceful
/// shutdown begins (as `RevocationService` does for revocation lists).
struct FederationService: Service {
    let keeper: FederationKeeper
    let membership: MembershipService
    let stored: [[UInt8]]
    let logger: Logger
    /// How often expiry is checked (a grant that expires closes its channels within this).
    var sweepInterval: Duration = .seconds(1)

    func run() async throws {
        // Subscribed before anything is fed, so no grant is missed.
        let events = membership.events()
        await cancelWhenGracefulShutdown { [keeper, sweepInterval] in
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        // Cancelled at shutdown: the loop ends at its next check.
                        try? await Task.sleep(for: sweepInterval)
                        await keeper.sweep()
                    }
                }
                group.addTask { [membership, stored, logger] in
                    do {
                        // Idempotent: binds if the membership service has not yet, else waits for it.
                        _ = try await membership.start()
                        for grant in stored {
                            if let refusal = try await membership.learnFederationGrant(grant) {
                                logger.error("a stored federation grant is refused by the gossip service", metadata: ["reason": "\(refusal)"])
                            }
                        }
                    } catch {
                        logger.debug("stored federation grants not gossiped: the membership did not start", metadata: ["error": "\(error)"])
                    }
                    for await event in events {
                        if case .federationGrantLearned(let notice) = event { await keeper.learned(notice) }
                    }
                }
                // The event stream ends with the gossip service; the sweep ends with cancellation.
                await group.next()
                group.cancelAll()
            }
        }
    }
}
