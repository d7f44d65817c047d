import ControlAPI
import Foundation
import Logging
import NIOCore
import NIOConcurrencyHelpers
import MeshWire
import Migration
import SecureChannel

/// Hellos with other agents, and the overlay keys that follow from them. For each pair of hosts
/// the overlay is keyed from the channel that the host with the smaller id opened, so both ends
/// derive the same keys; when the larger one says hello first, the smaller one dials back.
struct PeerLinks: Sendable {
    let credentials: ChannelCredentials
    let network: AgentNetwork
    let channel: HostPort
    let overlay: HostPort?
    let logger: Logger
    let ledger: OwnershipLedger
    /// Other agents met through hellos and membership: host id → channel address (shared with
    /// the migration coordinator, which asks peers that restarted on another address).
    let known: NIOLockedValueBox<[String: HostPort]>
    /// Where greetings are asked for; the `PeerGreetingService` runs them.
    let greetings: GreetingQueue
    /// The VMs a peer's ownership records may fence.
    let vms: VMManager
    /// Domain key rotations: sent after a hello, learned from peers (Protocol.md §2.10).
    let domainKeys: DomainKeyKeeper
    /// The gossip keyring: sent after a hello to hosts of this domain, learned from them (Protocol.md §4.17).
    let gossipKeyring: GossipKeyringKeeper
    /// Told of each peer's channel address and the round trip its hello's channel measured
    /// (microseconds), so that a first migration there can open its stream early (Protocol.md §6.3).
    let measuredRoundTrip: @Sendable (HostPort, String, UInt32, Bool) async -> Void

    var hostID: String { credentials.identity.hostID }

    func hello() -> Hostmesh_V1_AgentHello {
        var hello = Hostmesh_V1_AgentHello()
        hello.hostID = hostID
        hello.software = Agent.software
        hello.unixTime = Int64(Date().timeIntervalSince1970)
        hello.channelAddress = "\(channel)"
        if let overlay { hello.overlayAddress = "\(overlay)" }
        return hello
    }

    static func checkClaim(_ hello: Hostmesh_V1_AgentHello, _ connection: SecureConnection) throws {
        guard hello.hostID == connection.peer.hostID else {
            throw AgentError.protocolViolation("hello claims \(hello.hostID) but the certificate proves \(connection.peer.hostID)")
        }
    }

    /// After a hello exchange: key the overlay, or dial back so the smaller host id initiates.
    func helloExchanged(_ hello: Hostmesh_V1_AgentHello, on connection: SecureConnection, initiatedHere: Bool) async {
        // A peer address that does not parse is not remembered: it is only a hint, the peer's own
        // membership gossip carries its channel address too.
        if var address = try? HostPort(parsing: hello.channelAddress) {
            if address.isWildcard, let ip = connection.channel.channel.remoteAddress?.ipAddress { address.host = ip }
            known.withLockedValue { $0[hello.hostID] = address }
            // Hosts of this domain only: a migration across domains opens no stream early.
            if connection.peer.domain == credentials.certificate.domain {
                await measuredRoundTrip(address, hello.hostID, await OutgoingStreamTunnel.roundTrip(of: connection.channel.channel),
                                        connection.session.peerAcceptsFiller)
            }
        }
        let initiator = initiatedHere ? hostID : hello.hostID
        let responder = initiatedHere ? hello.hostID : hostID
        if initiator < responder {
            // Empty when the peer has no overlay (no VM networks): nothing to key.
            if var overlay = try? HostPort(parsing: hello.overlayAddress) {
                // A wildcard listener advertises 0.0.0.0: reach it where its channel came from.
                if overlay.isWildcard, let ip = connection.channel.channel.remoteAddress?.ipAddress {
                    overlay.host = ip
                }
                await network.setPeer(hello.hostID, overlay: overlay, session: connection.session)
            }
        } else if !initiatedHere, let back = try? HostPort(parsing: hello.channelAddress) { // unparsable: no dial-back, as above
            // The larger host said hello first; open the keying channel from this (smaller) side.
            let remote = connection.channel.channel.remoteAddress?.ipAddress ?? "127.0.0.1"
            let address = back.isWildcard ? HostPort(host: remote, port: back.port) : back
            greetings.request(address)
        }
    }

    /// Opens a channel to another agent, exchanges hellos and an encrypted note.
    func greet(_ peer: HostPort) async {
        do {
            let connection = try await SecureConnection.connect(host: peer.host, port: peer.port,
                                                                configuration: SecureChannelConfiguration(credentials: credentials), logger: logger)
            logger.info("peer proved its identity", metadata: ["mesh.peer": "\(connection.peer)", "mesh.address": "\(peer)",
                                                              "mesh.aead": "\(connection.session.aead.rawValue)"])
            try await connection.channel.executeThenClose { inbound, outbound in
                var hello = Hostmesh_V1_AgentEnvelope()
                hello.hello = self.hello()
                try await outbound.write(EnvelopeWriter.frame(hello))
                var reader = EnvelopeReader(inbound)
                guard case .helloReply(let reply)? = try await reader.next()?.body else {
                    throw AgentError.protocolViolation("\(peer) did not answer the hello")
                }
                try Self.checkClaim(reply, connection)
                logger.info("hello reply", metadata: ["mesh.peer": "\(reply.hostID)", "mesh.software": "\(reply.software)",
                                                      "mesh.clock_skew_s": "\(reply.unixTime - Int64(Date().timeIntervalSince1970))"])
                await helloExchanged(reply, on: connection, initiatedHere: true)
                // Where our VMs' MACs are, so the peer's switch can reach them; what we own.
                var locations = Hostmesh_V1_AgentEnvelope()
                locations.locationUpdate.locations = Data(await network.locationSnapshot())
                try await outbound.write(EnvelopeWriter.frame(locations))
                // Tombstones go to hosts of this domain only (§6.10), like the gossip keyring.
                if connection.peer.domain == credentials.certificate.domain, let tombstones = await tombstoneEnvelope() {
                    try await outbound.write(EnvelopeWriter.frame(tombstones))
                }
                if let ownership = await ownershipEnvelope(for: reply.hostID) { try await outbound.write(EnvelopeWriter.frame(ownership)) }
                if let rotations = DomainKeyKeeper.envelope(credentials.trust) { try await outbound.write(EnvelopeWriter.frame(rotations)) }
                if connection.peer.domain == credentials.certificate.domain, let keyring = await gossipKeyring.update() {
                    try await outbound.write(EnvelopeWriter.frame(keyring))
                }
                var note = Hostmesh_V1_AgentEnvelope()
                note.note.text = "greetings from \(hostID), sealed with \(connection.session.aead.rawValue)"
                try await outbound.write(EnvelopeWriter.frame(note))
                // The peer answers a hello with its locations and ownership records (§5.4): read
                // them too, or this host would learn them only when they next change.
                try await receiveUpdatesAfterHello(&reader, from: reply.hostID, peerDomain: connection.peer.domain, channel: connection.channel.channel)
            }
        } catch {
            logger.error("could not establish a secure channel", metadata: ["mesh.address": "\(peer)", "mesh.reason": "\(error)"])
        }
    }

    /// This host's ownership records for `peer`, or nil (logged at error) when the store cannot
    /// read them: the hello goes on without, and `OwnershipSyncService` sends them once it can.
    func ownershipEnvelope(for peer: String) async -> Hostmesh_V1_AgentEnvelope? {
        do {
            var ownership = Hostmesh_V1_AgentEnvelope()
            ownership.ownershipUpdate.records = try await ledger.records()
            return ownership
        } catch {
            logger.error("cannot read this host's ownership records: the peer cannot fence stale copies of our VMs until they are sent",
                         metadata: ["mesh.peer": "\(peer)", "error": "\(error)"])
            return nil
        }
    }

    /// The tombstones that stand here, for another agent of this domain (§6.10), or nil: none, or
    /// the store cannot read them (logged; the next change or hello sends them).
    func tombstoneEnvelope() async -> Hostmesh_V1_AgentEnvelope? {
        do { return try await vms.tombstoneEnvelope() } catch {
            logger.error("cannot read the tombstones: other hosts may give a departed VM's MAC away until they are sent", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Keeps the tombstones another agent of this domain sent (§6.10); from a host of another
    /// domain, or beyond the caps, they are dropped and logged (`TombstoneStore.admit`).
    func receive(tombstones update: Hostmesh_V1_XdomainTombstones, from peer: String, peerDomain: String) async {
        let admitted = TombstoneStore.admit(update, fromDomain: peerDomain, localDomain: credentials.certificate.domain)
        for reason in admitted.dropped {
            logger.warning("tombstones dropped", metadata: ["mesh.peer": "\(peer)", "mesh.domain": "\(peerDomain)", "mesh.reason": "\(reason)"])
        }
        guard !admitted.tombstones.isEmpty else { return }
        do {
            let kept = try await vms.learn(tombstones: admitted.tombstones)
            if kept > 0 { logger.info("tombstones learned: their MACs and ids are not reused here", metadata: ["mesh.peer": "\(peer)", "vm.count": "\(kept)"]) }
        } catch {
            // Not kept: the peer sends them again with its next ownership change or hello.
            logger.error("cannot keep a peer's tombstones", metadata: ["mesh.peer": "\(peer)", "error": "\(error)"])
        }
    }

    /// Sends location changes to every known agent (one short channel each).
    func publish(locations: [UInt8]) async {
        var update = Hostmesh_V1_AgentEnvelope()
        update.locationUpdate.locations = Data(locations)
        await broadcast(update)
    }

    /// Sends one envelope to every known agent (one short channel each; failures are logged).
    func broadcast(_ envelope: Hostmesh_V1_AgentEnvelope, sameDomain: Bool = false) async {
        let peers = known.withLockedValue { $0 }
        await withTaskGroup(of: Void.self) { group in
            for (host, address) in peers {
                group.addTask { await send(envelope, to: host, at: address, sameDomain: sameDomain) }
            }
        }
    }

    /// Sends one envelope to `host` at `address` on a short channel of its own; with
    /// `sameDomain`, only to a host certified in this host's domain (failures are logged).
    func send(_ envelope: Hostmesh_V1_AgentEnvelope, to host: String, at address: HostPort, sameDomain: Bool = false) async {
        do {
            var policy = ChannelPolicy()
            policy.expectedPeer = host
            if sameDomain { policy.requiredDomain = credentials.certificate.domain }
            let connection = try await SecureConnection.connect(host: address.host, port: address.port,
                                                                configuration: SecureChannelConfiguration(credentials: credentials, policy: policy), logger: logger)
            _ = try await connection.request(envelope, expectAnswer: false)
        } catch {
            logger.debug("update not delivered", metadata: ["mesh.peer": "\(host)", "error": "\(error)"])
        }
    }

    /// Applies a peer's ownership records; a copy here that a newer owner makes stale is fenced.
    func receive(ownership records: [Hostmesh_V1_OwnershipRecord], from peer: String) async {
        let stale: [String]
        do { stale = try await ledger.apply(records, from: peer).stale } catch {
            // Not fenced: the store that would hold the copies is what failed. The peer's next
            // round (OwnershipSyncService) brings the records again.
            logger.error("cannot record a peer's ownership records: stale copies here are not fenced until it can", metadata: [
                "mesh.peer": "\(peer)", "vm.ids": "\(records.map(\.vmID))", "error": "\(error)"])
            return
        }
        for vm in stale {
            // A newer owner exists: a copy here must not run (fencing).
            logger.error("stale VM copy fenced: another host owns it at a higher epoch", metadata: ["vm.id": "\(vm)", "mesh.peer": "\(peer)"])
            await vms.fence(vm)
        }
    }

    /// How long a greeter waits for the peer's updates after the hello reply.
    static let updatesAfterHelloTimeout: Duration = .seconds(3)

    /// Reads what a greeted peer sends after its hello reply (its locations, then its ownership
    /// records, the latter absent if its ledger cannot be read), applying them, until both came,
    /// the peer closes, or the timeout.
    private func receiveUpdatesAfterHello(_ reader: inout EnvelopeReader, from peer: String, peerDomain: String, channel: any Channel) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(for: Self.updatesAfterHelloTimeout)
                try await channel.close()
            }
            defer { group.cancelAll() }
            var locations = false, ownership = false
            while !(locations && ownership), let envelope = try await reader.next() {
                switch envelope.body {
                case .locationUpdate(let update):
                    await network.apply(locations: [UInt8](update.locations))
                    locations = true
                case .ownershipUpdate(let update):
                    await receive(ownership: update.records, from: peer)
                    ownership = true
                case .domainKeyRotations(let update):
                    await domainKeys.receive(update.records, from: peer)
                case .xdomainTombstones(let update):
                    await receive(tombstones: update, from: peer, peerDomain: peerDomain)
                case .gossipKeyring(let update) where peerDomain == credentials.certificate.domain:
                    await gossipKeyring.receive(update, from: peer)
                default:
                    continue // nothing else is expected here; the responder's channel is not for it
                }
            }
        }
    }
}
