import ControlAPI
import MeshWire
import Placement
import ServiceLifecycle

/// Runs DRS (Protocol.md §10.5): every `syncInterval` this host's records and VM loads go to every
/// known agent when they changed (at least every `DRSController.keepaliveSyncs` syncs); every `interval` (±10%, so agents do not act in lockstep) a round decides, and
/// the moves of this host's VMs start, each in its own child task. A host in maintenance runs a
/// round at every sync, so its evacuation does not wait for the balancing interval.
struct DRSService: Service {
    let controller: DRSController
    /// Sends one envelope to every known agent (`PeerLinks.broadcast`).
    let broadcast: @Sendable (Hostmesh_V1_AgentEnvelope) async -> Void

    func run() async throws {
        let configuration = controller.configuration
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [controller, broadcast] in
            try await withThrowingDiscardingTaskGroup { group in
                var untilRound = Duration.seconds(configuration.interval * Double.random(in: 0.9...1.1))
                while !Task.isCancelled {
                    if let update = await controller.syncUpdate() { await broadcast(update) }
                    let sync = Duration.seconds(configuration.syncInterval)
                    untilRound -= sync
                    let evacuating = await controller.evacuating
                    if untilRound <= .zero || evacuating {
                        for (move, destination) in await controller.round() {
                            group.addTask {
                                // A failure is logged and counted by `execute` and leaves no hold: the next round
                                // decides again. Thrown on, it would end this task group and DRS with it.
                                _ = try? await controller.execute(move, to: destination)
                            }
                        }
                        if untilRound <= .zero { untilRound = .seconds(configuration.interval * Double.random(in: 0.9...1.1)) }
                    }
                    try await Task.sleep(for: sync)
                }
            }
        }
    }
}
