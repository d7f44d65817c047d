import Logging
import MeshWire
import SecureChannel

/// Answers a `federation` channel (Protocol.md §2.9, §5.2): the cross-domain control channel a
/// host of a federated domain may open (the handshake let its certificate in only for this
/// purpose and `migration-stream`, and only while this domain's grant for its domain is in
/// force). It carries notes; a migration on it is refused with the reason (migrations between
/// domains have a channel purpose of their own, `CrossDomainMigrationGate`), and it closes on
/// anything else (code 1), so no envelope of the domain's own mesh (hello, ownership, locations,
/// push-pull, join, renewal, DRS) ever crosses the boundary.
struct CrossDomainGate: Sendable {
    /// The purpose of a cross-domain control channel.
    static let purpose = "federation"
    /// What a migration on a `federation` channel is refused with.
    static let notYet = "a migration on a federation channel is not supported: migrations between domains run on a cross-domain-migration channel (`hostmesh migrate VM --to-domain NAME --via HOST:PORT`, Protocol.md §6.10)"

    let logger: Logger

    /// Serves `connection` until the peer closes it, a refusal closes it, or its grant stops
    /// letting the peer in (the channel handler closes it with code 24).
    func serve(_ connection: SecureConnection) async {
        let peer = connection.peer
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                do {
                    var reader = EnvelopeReader(inbound)
                    while let envelope = try await reader.next() {
                        switch envelope.body {
                        case .note(let note):
                            logger.info("cross-domain note received", metadata: ["mesh.peer": "\(peer.hostID)", "mesh.peer_domain": "\(peer.domain)", "note": "\(note.text)"])
                        case .migrationPrepare(let prepare):
                            logger.warning("migration from another domain refused", metadata: [
                                "mesh.peer": "\(peer.hostID)", "mesh.peer_domain": "\(peer.domain)", "migration.id": "\(prepare.migrationID)"])
                            var reply = Hostmesh_V1_AgentEnvelope()
                            reply.migrationPrepared.migrationID = prepare.migrationID
                            reply.migrationPrepared.error = Self.notYet
                            try await outbound.write(EnvelopeWriter.frame(reply))
                        default:
                            throw SecureChannelError(.protocolViolation, "a federation channel carries no \(Self.name(envelope.body)) (Protocol.md §5.2)")
                        }
                    }
                } catch {
                    if let refusal = PeerConnectionHandler.refusal(error) {
                        connection.channel.channel.triggerUserOutboundEvent(SecureChannelCloseRequest(refusal), promise: nil)
                    }
                    throw error
                }
            }
        } catch {
            let reason = await connection.failureReason().map { "\($0)" } ?? "\(error)"
            logger.warning("cross-domain channel ended", metadata: ["mesh.peer": "\(peer.hostID)", "mesh.peer_domain": "\(peer.domain)", "mesh.reason": "\(reason)"])
        }
    }

    /// The envelope member's name, for the refusal.
    static func name(_ body: Hostmesh_V1_AgentEnvelope.OneOf_Body?) -> String {
        guard let body else { return "empty envelope" }
        return "\(body)".split(separator: "(").first.map(String.init) ?? "such message"
    }
}
