import Logging
import MeshWire
import SecureChannel

/// Answers a `federation` channel (Protocol.md §2.9, §5.2): the cross-domain control channel a
/// host of a federated domain may open (the handshake let its certificate in only for this
/// purpose and `migration-stream`, and only while this domain's grant for its domain is in
/// force). It carries notes and, in a later version, the migration messages of a move between
/// domains; this version refuses a migration across domains with the reason, and closes on
/// anything else (code 1), so no envelope of the domain's own mesh (hello, ownership, locations,
/// push-pull, join, renewal, DRS) ever crosses the boundary.
struct CrossDomainGate: Sendable {
    /// The purpose of a cross-domain control channel.
    static let purpose = "federation"
    /// What a migration across domains is refused with in this version.
    static let notYet = "live migration into another domain is not supported by this hostmesh yet: the domains are federated, but only channels cross the boundary for now"

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

    /// The refusal of a migration stream from a host of another domain.
    static func streamRefusal(_ peer: PeerIdentity) -> SecureChannelError {
        SecureChannelError(.protocolViolation, "\(peer.hostID) of domain \(peer.domain): \(notYet)")
    }

    /// The envelope member's name, for the refusal.
    static func name(_ body: Hostmesh_V1_AgentEnvelope.OneOf_Body?) -> String {
        guard let body else { return "empty envelope" }
        return "\(body)".split(separator: "(").first.map(String.init) ?? "such message"
    }
}
