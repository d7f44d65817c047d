import SecureChannel
import ServiceLifecycle

/// The secure-channel listener other agents connect to (control messages, membership
/// push-pull and joins, migration streams). Bound during the agent's setup, so its address is
/// known before anything is advertised; this service accepts until graceful shutdown or
/// cancellation, then stops accepting and drains (`ListenerShutdown`).
///
/// It runs early and so stops late: peers can still reach this host while it leaves the mesh.
struct PeerListenerService: Service {
    let listener: SecureChannelListener
    let handler: PeerConnectionHandler
    /// Bounds how long open channels may hold up the agent's shutdown.
    var shutdown = ListenerShutdown(drain: .seconds(2))

    func run() async throws {
        try await shutdown.run { [listener, handler] in
            try await listener.run { connection in await handler.serve(connection) }
        } close: { [listener] in
            await listener.close()
        }
    }
}
