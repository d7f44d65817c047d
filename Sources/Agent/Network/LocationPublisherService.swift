import ServiceLifecycle

/// Sends this host's MAC locations to every known agent whenever the virtual switch publishes
/// them (`AgentNetwork.publishLocations`). Ends at graceful shutdown or cancellation, or when the
/// switch stops.
struct LocationPublisherService: Service {
    let network: AgentNetwork
    let peers: PeerLinks

    func run() async throws {
        // Cancelling ends the wait on the switch's event stream (an AsyncStream) at once.
        await cancelWhenGracefulShutdown {
            await network.publishLocations { bytes in await peers.publish(locations: bytes) }
        }
    }
}
