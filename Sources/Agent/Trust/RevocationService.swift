import GossipTransport
import Logging
import ServiceLifecycle

/// Feeds the stored revocation lists into gossip once the membership runs, then enforces every
/// newer list the mesh brings (`RevocationKeeper.learned`) until the gossip service stops or a
/// graceful shutdown begins.
struct RevocationService: Service {
    let keeper: RevocationKeeper
    let membership: MembershipService
    let stored: [[UInt8]]
    let logger: Logger

    func run() async throws {
        // Subscribed before anything is fed, so no list is missed.
        let events = membership.events()
        await cancelWhenGracefulShutdown { [membership, stored, logger] in
            do {
                // Idempotent: binds if the membership service has not yet, else waits for it.
                _ = try await membership.start()
                for list in stored {
                    if let refusal = try await membership.learnRevocation(list) {
                        logger.error("a stored revocation list is refused by the gossip service", metadata: ["reason": "\(refusal)"])
                    }
                }
            } catch {
                logger.debug("stored revocation lists not gossiped: the membership did not start", metadata: ["error": "\(error)"])
            }
        }
        // Ends with the gossip service, or at once on graceful shutdown: the group stops this
        // service before the membership (it comes after it), so it must not wait for the stream's end.
        await cancelWhenGracefulShutdown { [keeper] in
            for await event in events {
                if case .revocationLearned(let notice) = event { await keeper.learned(notice) }
            }
        }
    }
}
