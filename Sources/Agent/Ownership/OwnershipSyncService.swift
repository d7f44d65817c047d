import MeshWire
import ServiceLifecycle

/// Ownership anti-entropy (Protocol.md §6.6): every `interval`, this host's ownership records go
/// to every known agent if they changed since the last round. Hellos carry them too; this loop
/// spreads the changes in between (a completed handover, a fenced copy).
///
/// The records and the broadcast are injected, so the loop is tested without a store or peers;
/// the clock is injected so it is tested without waiting.
struct OwnershipSyncService<C: Clock<Duration>>: Service {
    /// Time between rounds.
    let interval: Duration
    let clock: C
    /// This host's ownership records (`OwnershipLedger.records`).
    let records: @Sendable () async throws -> [Hostmesh_V1_OwnershipRecord]
    /// Sends one envelope to every known agent (`PeerLinks.broadcast`).
    let broadcast: @Sendable (Hostmesh_V1_AgentEnvelope) async -> Void

    func run() async throws {
        // Cancelled at graceful shutdown; the CancellationError the sleep then throws is the
        // normal end, and a throw here would make the ServiceGroup cancel the other services.
        try? await cancelWhenGracefulShutdown { [self] in
            var last: [Hostmesh_V1_OwnershipRecord] = []
            while true {
                try await clock.sleep(for: interval)
                last = await round(after: last)
            }
        }
    }

    /// One round: broadcasts the records if they differ from `last`; returns what was sent.
    private func round(after last: [Hostmesh_V1_OwnershipRecord]) async -> [Hostmesh_V1_OwnershipRecord] {
        // A store that cannot be read now is read again next round; nothing is sent meanwhile.
        guard let records = try? await records(), records != last else { return last }
        var update = Hostmesh_V1_AgentEnvelope()
        update.ownershipUpdate.records = records
        await broadcast(update)
        return records
    }
}

extension OwnershipSyncService where C == ContinuousClock {
    /// Rounds every `interval` on the continuous clock.
    init(interval: Duration, records: @escaping @Sendable () async throws -> [Hostmesh_V1_OwnershipRecord],
         broadcast: @escaping @Sendable (Hostmesh_V1_AgentEnvelope) async -> Void) {
        self.init(interval: interval, clock: ContinuousClock(), records: records, broadcast: broadcast)
    }
}
