import ControlAPI
import ServiceLifecycle

/// The local control socket (`hostmesh vm …`, `migrate`, `members`). Bound during the agent's
/// setup; this service serves requests until graceful shutdown or cancellation, then stops
/// accepting and gives requests in flight a short drain (`ListenerShutdown`) before cancelling
/// them (a `migrate` still running then fails, and its journal settles it at the next start).
struct ControlService: Service {
    let server: ControlServer
    let handler: ControlHandler
    /// Bounds how long requests in flight may hold up the agent's shutdown.
    var shutdown = ListenerShutdown(drain: .seconds(2))

    func run() async throws {
        try await shutdown.run { [server, handler] in
            try await server.run { request, responder in try await handler.handle(request, responder) }
        } close: { [server] in
            await server.close()
        }
    }
}
