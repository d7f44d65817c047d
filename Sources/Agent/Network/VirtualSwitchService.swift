import ServiceLifecycle

/// The virtual switch, started during the agent's setup (its overlay address is advertised in
/// hellos): this service keeps it for the agent's lifetime and stops it at graceful shutdown or
/// cancellation, closing its overlay socket and its ports' sockets. The VMs keep running; their
/// ports are created again when the next agent re-adopts them.
///
/// It runs first, so it stops last: everything that moves ports or publishes locations has
/// ended by then.
struct VirtualSwitchService: Service {
    let network: AgentNetwork

    func run() async throws {
        // Throws only when cancelled: stop then too.
        try? await gracefulShutdown()
        await network.stop()
    }
}
