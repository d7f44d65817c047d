import MigrationService
import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel

/// Answers a channel another agent opened: hellos, ownership and location updates, membership
/// push-pull and joins, and the control messages of migrations (handed to the coordinator).
struct PeerConnectionHandler: Sendable {
    let coordinator: MigrationCoordinator
    let peers: PeerLinks
    let membership: AgentMembership
    let vms: VMManager
    let certificates: CertificateDesk
    /// Receives peers' DRS anti-entropy (Agent/DRS).
    let drs: DRSController
    /// Receives the domain key rotations peers send (Agent/Trust).
    let domainKeys: DomainKeyKeeper
    /// Migrations from federated domains (Agent/Federation, Protocol.md §6.10).
    let crossDomain: CrossDomainMigrationGate
    let logger: Logger

    /// Serves `connection` until the peer closes it, it fails, or the task is cancelled; then
    /// tells the coordinator which migrations it carried.
    func serve(_ connection: SecureConnection) async {
        logger.info("peer proved its identity", metadata: proofMetadata(connection))
        if connection.peer.purpose == CrossDomainGate.purpose {
            await CrossDomainGate(logger: logger).serve(connection)
            return
        }
        if connection.peer.purpose == FederationGrant.migrationPurpose {
            await crossDomain.serve(connection)
            return
        }
        var migrations = Set<String>()
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
              do {
                var reader = EnvelopeReader(inbound)
                while let envelope = try await reader.next() {
                    switch envelope.body {
                    case .hello(let hello):
                        try PeerLinks.checkClaim(hello, connection)
                        logger.info("hello", metadata: ["mesh.peer": "\(hello.hostID)", "mesh.software": "\(hello.software)"])
                        var reply = Hostmesh_V1_AgentEnvelope()
                        reply.helloReply = peers.hello()
                        try await outbound.write(EnvelopeWriter.frame(reply))
                        // Before the updates the greeter waits for (it stops reading after them).
                        if let rotations = DomainKeyKeeper.envelope(peers.credentials.trust) {
                            try await outbound.write(EnvelopeWriter.frame(rotations))
                        }
                        // The gossip keyring's secrets go to hosts of this domain only (Protocol.md §4.17).
                        if connection.peer.domain == peers.credentials.certificate.domain, let keyring = await peers.gossipKeyring.update() {
                            try await outbound.write(EnvelopeWriter.frame(keyring))
                        }
                        await peers.helloExchanged(hello, on: connection, initiatedHere: false)
                        var locations = Hostmesh_V1_AgentEnvelope()
                        locations.locationUpdate.locations = Data(await peers.network.locationSnapshot())
                        try await outbound.write(EnvelopeWriter.frame(locations))
                        // Tombstones too (Protocol.md §6.10).
                        if connection.peer.domain == peers.credentials.certificate.domain, let tombstones = await peers.tombstoneEnvelope() {
                            try await outbound.write(EnvelopeWriter.frame(tombstones))
                        }
                        if let ownership = await peers.ownershipEnvelope(for: hello.hostID) {
                            try await outbound.write(EnvelopeWriter.frame(ownership))
                        }
                    case .domainKeyRotations(let update):
                        await domainKeys.receive(update.records, from: connection.peer.hostID)
                    case .gossipKeyring(let update):
                        guard connection.peer.domain == peers.credentials.certificate.domain else {
                            throw SecureChannelError(.wrongDomain, "\(connection.peer.hostID) is in domain \(connection.peer.domain); the gossip keyring of \(peers.credentials.certificate.domain) is taken from its own hosts only")
                        }
                        await peers.gossipKeyring.receive(update, from: connection.peer.hostID)
                    case .ownershipUpdate(let update):
                        await peers.receive(ownership: update.records, from: connection.peer.hostID)
                    case .xdomainTombstones(let update):
                        await peers.receive(tombstones: update, from: connection.peer.hostID, peerDomain: connection.peer.domain)
                    case .pushPull(let request):
                        try await outbound.write(EnvelopeWriter.frame(try await membership.handlePushPull([UInt8](request.state), from: connection.peer)))
                    case .joinRequest:
                        try await outbound.write(EnvelopeWriter.frame(try await membership.handleJoin(from: connection.peer)))
                    case .certificateRenewal(let request):
                        try await outbound.write(EnvelopeWriter.frame(try certificates.renew(request, for: connection.peer)))
                    case .locationUpdate(let update):
                        await peers.network.apply(locations: [UInt8](update.locations))
                    case .vmPlaceRequest(let request):
                        let placement = InitialPlacement(controller: drs, vms: vms, credentials: peers.credentials, membership: membership, logger: logger)
                        try await outbound.write(EnvelopeWriter.frame(await placement.serve(request, from: connection.peer.hostID)))
                    case .drsUpdate(let update):
                        await drs.receive(update, from: connection.peer.hostID)
                    case .note(let note):
                        logger.info("encrypted note received", metadata: ["mesh.peer": "\(connection.peer.hostID)", "note": "\(note.text)"])
                    case .migrationPrepare(let prepare):
                        migrations.insert(prepare.migrationID)
                        // The channel says whether it is the checklist's, kept for the prepare (§6.9).
                        logger.info("migration prepare received", metadata: ["migration.id": "\(prepare.migrationID)", "mesh.peer": "\(connection.peer.hostID)",
                                                                             "mesh.remote": "\(connection.channel.channel.remoteAddress.map { "\($0)" } ?? "?")"])
                        fallthrough
                    case .migrationCommit, .migrationAbort, .migrationQuery:
                        if let reply = await coordinator.handle(envelope.body!, from: connection.peer.hostID) {
                            try await outbound.write(EnvelopeWriter.frame(reply))
                        }
                    case .migrationCheck(let check):
                        let answer = await coordinator.checkIncoming(check, from: connection.peer.hostID)
                        try await outbound.write(EnvelopeWriter.frame(answer))
                        logger.info("pre-flight checklist answered", metadata: [
                            "mesh.peer": "\(connection.peer.hostID)", "mesh.remote": "\(connection.channel.channel.remoteAddress.map { "\($0)" } ?? "?")",
                            "preflight.failed": "\(answer.migrationCheckResult.items.filter { !$0.ok }.map(\.name).joined(separator: ","))"])
                    case .helloReply, .migrationStream, .migrationPrepared, .migrationCommitted, .migrationVerdict, .pushPullReply, .joinAccepted, .certificateRenewed, .vmPlaceReply,
                         .migrationCheckResult, .none:
                        throw AgentError.protocolViolation("unexpected message from \(connection.peer.hostID)")
                    case .xdomainMigrationRequest, .xdomainMigrationOffer, .xdomainOverlayHello:
                        // Only on a cross-domain-migration channel (Protocol.md §5.2, §6.10).
                        throw AgentError.protocolViolation("unexpected message from \(connection.peer.hostID)")
                    }
                }
              } catch {
                // Protocol.md §5.3: a refusal reaches the peer as an authenticated close with its
                // code and reason, not as the orderly close that ending the channel would send.
                if let refusal = Self.refusal(error) {
                    connection.channel.channel.triggerUserOutboundEvent(SecureChannelCloseRequest(refusal), promise: nil)
                }
                throw error
              }
            }
        } catch {
            let reason = await connection.failureReason().map { "\($0)" } ?? "\(error)"
            logger.warning("channel ended with an error", metadata: ["mesh.peer": "\(connection.peer.hostID)", "mesh.reason": "\(reason)"])
        }
        await coordinator.channelEnded(migrations: migrations, from: connection.peer.hostID)
    }

    /// The close reason for a failure of this side (nil when the peer ended the channel itself).
    static func refusal(_ error: any Error) -> SecureChannelError? {
        guard let error = error as? SecureChannelError else { return SecureChannelError(.protocolViolation, "\(error)") }
        return error.byPeer ? nil : error
    }

    private func proofMetadata(_ connection: SecureConnection) -> Logger.Metadata {
        let cert = connection.peer.certificate
        return [
            "mesh.peer": "\(connection.peer.hostID)", "mesh.domain": "\(connection.peer.domain)",
            "mesh.cert_serial": "\(cert.serial)", "mesh.peer_key": "\((try? cert.identityKey().fingerprint) ?? "?")", // for the log: the handshake verified the key
            "mesh.aead": "\(connection.session.aead.rawValue)", "mesh.purpose": "\(connection.peer.purpose)",
        ]
    }
}
