import ControlAPI
import ServiceLifecycle

/// Says hello to other agents: the configured peers at start, then every address put on the
/// `GreetingQueue`. A greeting keys the overlay and exchanges locations and ownership
/// (`PeerLinks.greet`); each runs as a child task of this service.
///
/// Graceful shutdown stops taking requests and cancels the greetings in flight: a greeting is
/// one short exchange, and a peer that missed it is greeted again when this agent comes back
/// (it restarts as a new member instance).
struct PeerGreetingService: Service {
    let peers: PeerLinks
    let queue: GreetingQueue
    /// Agents to greet at start (`peers` in the configuration).
    let initial: [HostPort]

    func run() async throws {
        await withDiscardingTaskGroup { group in
            for address in initial {
                group.addTask { await peers.greet(address) }
            }
            await withGracefulShutdownHandler {
                // Ends at graceful shutdown (the queue is finished) or cancellation.
                for await address in queue.requests {
                    group.addTask { await peers.greet(address) }
                }
            } onGracefulShutdown: {
                queue.finish()
            }
            group.cancelAll()
        }
    }
}
