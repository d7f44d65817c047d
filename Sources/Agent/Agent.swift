public import ControlAPI
import Foundation
public import Hypervisor
public import Logging
import Membership
import MeshIdentity
import MeshWire
import Migration
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
public import SecureChannel
public import ServiceLifecycle

/// The hostmesh node: accepts secure channels from other agents (control messages and
/// migration streams), serves the local control socket, owns this host's VMs and migrates them.
public struct Agent: Service {
    /// Software identification sent in hellos.
    public static let software = "hostmesh 0.1.0"

    private let configuration: AgentConfiguration
    private let credentials: ChannelCredentials
    private let logger: Logger
    private let vmOptions: VMProcess.Options
    private let onListening: @Sendable (HostPort) -> Void

    /// An agent with loaded credentials. `onListening` is told the bound channel address.
    public init(configuration: AgentConfiguration, credentials: ChannelCredentials, logger: Logger,
                vmOptions: VMProcess.Options = VMProcess.Options(), onListening: @escaping @Sendable (HostPort) -> Void = { _ in }) {
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.vmOptions = vmOptions
        self.onListening = onListening
    }

    public func run() async throws {
        let store = try AgentStore(stateDirectory: configuration.stateDirectory)
        let vms = VMManager(store: store, stateDirectory: configuration.stateDirectory, options: vmOptions, logger: logger)
        let network = try AgentNetwork(hostID: credentials.identity.hostID, overlay: configuration.overlayListen,
                                       networks: configuration.networks, logger: logger)
        try await network.start()
        let overlay = await network.overlayAddress().flatMap { $0.port }.map { HostPort(host: configuration.overlayListen.host, port: $0) }
        await vms.use(network: network)
        await vms.recover()
        let link = LinkSpeed.megabitsPerSecond(of: configuration.advertiseHost ?? configuration.channelListen.host)
        let limits = MigrationCoordinator.Limits(linkMegabits: link, incoming: configuration.maxIncomingMigrations,
                                                 outgoing: configuration.maxOutgoingMigrations)
        logger.info("migration limits", metadata: ["migration.incoming_max": "\(limits.incoming)", "migration.outgoing_max": "\(limits.outgoing)",
                                                   "link.mbit_s": "\(link.map(String.init) ?? "unknown")"])
        let coordinator = MigrationCoordinator(vms: vms, store: store, credentials: credentials,
                                               stateDirectory: configuration.stateDirectory, network: network, limits: limits, logger: logger)
        // Before anyone is served: the VMs of unfinished migrations are off limits until recovered.
        let unfinished = await coordinator.prepareRecovery()
        let listen = configuration.channelListen
        let listener = try await SecureChannelListener.bind(
            host: listen.host, port: listen.port, configuration: SecureChannelConfiguration(credentials: credentials), logger: logger
        ) { session in
            guard session.peer.purpose == "migration-stream" else { return .application }
            return MigrationStreamAcceptor.route(session) { peer, hello in try coordinator.authorizeStream(peer: peer, hello: hello) }
        }
        let bound = HostPort(host: listen.host, port: listener.localAddress?.port ?? listen.port)
        let ledger = OwnershipLedger(store: store, hostID: credentials.identity.hostID, logger: logger)
        let peers = PeerLinks(credentials: credentials, network: network, channel: bound, overlay: overlay, logger: logger, ledger: ledger,
                              known: coordinator.peerAddresses)
        let membership = try AgentMembership(configuration: configuration, credentials: credentials, channel: bound, logger: logger)
        let control = try await ControlServer.bind(path: StateDirectory(configuration.stateDirectory).controlSocket, logger: logger)
        let api = ControlHandler(vms: vms, coordinator: coordinator, membership: membership, credentials: credentials, listen: bound,
                                 ledger: ledger)
        logger.info("agent listening", metadata: [
            "mesh.host": "\(credentials.identity.hostID)", "mesh.domain": "\(credentials.certificate.domain)",
            "mesh.key": "\(credentials.identity.signingKey.publicKey.fingerprint)", "mesh.listen": "\(bound)",
        ])
        onListening(bound)
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    try await listener.run { connection in
                        await serve(connection, coordinator: coordinator, peers: peers, membership: membership, vms: vms)
                    }
                }
                group.addTask { try await control.run { request, responder in try await api.handle(request, responder) } }
                // Finish or roll back what a previous run left under way, then keep asking about doubts.
                group.addTask {
                    await coordinator.recover(unfinished)
                    await coordinator.retryInDoubt()
                }
                for peer in configuration.peers {
                    group.addTask { await peers.greet(peer) }
                }
                group.addTask { await network.publishLocations { bytes in await peers.publish(locations: bytes) } }
                group.addTask { try await membership.service.run() }
                group.addTask {
                    // Ownership anti-entropy: every agent's records to every known agent when they change.
                    var last: [Hostmesh_V1_OwnershipRecord] = []
                    while true {
                        try await Task.sleep(for: .seconds(2))
                        guard let records = try? await ledger.records(), records != last else { continue }
                        var update = Hostmesh_V1_AgentEnvelope()
                        update.ownershipUpdate.records = records
                        await peers.broadcast(update)
                        last = records
                    }
                }
                group.addTask {
                    _ = try? await membership.service.start()
                    await membership.joinAtStart(configuration.join)
                }
                group.addTask { await followMembers(membership, peers: peers) }
                group.addTask {
                    // Capacity as gossiped metadata, refreshed every few seconds.
                    while true {
                        let running = (try? await vms.list().filter { $0.state == "running" }.count) ?? 0
                        await membership.refresh(runningVMs: running, migrationsInFlight: await coordinator.inFlight)
                        try await Task.sleep(for: .seconds(3))
                    }
                }
            }
        } onGracefulShutdown: {
            Task {
                await listener.close()
                await control.close()
            }
        }
    }

    private func proofMetadata(_ connection: SecureConnection) -> Logger.Metadata {
        let cert = connection.peer.certificate
        return [
            "mesh.peer": "\(connection.peer.hostID)", "mesh.domain": "\(connection.peer.domain)",
            "mesh.cert_serial": "\(cert.serial)", "mesh.peer_key": "\((try? cert.identityKey().fingerprint) ?? "?")",
            "mesh.aead": "\(connection.session.aead.rawValue)", "mesh.purpose": "\(connection.peer.purpose)",
        ]
    }

    /// Reacts to membership: says hello to new members (which keys the overlay and exchanges
    /// locations), forgets departed ones.
    private func followMembers(_ membership: AgentMembership, peers: PeerLinks) async {
        // Each member's agent instance as last seen: a new one restarted, seen dead or not.
        var instances: [String: [UInt8]] = [:]
        for await event in membership.service.events() {
            switch event {
            case .memberChanged(let change) where change.member.id.hostID != credentials.identity.hostID:
                let member = change.member
                switch member.status {
                case .alive:
                    await noteAddress(of: member, peers: peers, instances: &instances,
                                      joined: change.previousStatus != .alive && change.previousStatus != .suspect)
                case .dead, .left:
                    logger.info("member \(member.status)", metadata: ["mesh.peer": "\(member.id)", "mesh.incarnation": "\(member.incarnation)"])
                    peers.known.withLockedValue { $0[member.id.hostID] = nil }
                    instances[member.id.hostID] = nil
                    await peers.network.removePeer(member.id.hostID)
                default:
                    break
                }
            case .metadataChanged(let member) where member.id.hostID != credentials.identity.hostID && member.status == .alive:
                // A member that restarted quickly is never seen dead: its new metadata (a new
                // instance, perhaps a new channel address) is how we learn it is a fresh agent.
                await noteAddress(of: member, peers: peers, instances: &instances, joined: false)
            default:
                break
            }
        }
    }

    /// Records a live member's channel address and agent instance; a new member, or one that
    /// restarted (a new instance, at the same address or another: a fresh agent whose overlay keys,
    /// locations and ownership must be exchanged again), is greeted by the smaller host id.
    private func noteAddress(of member: Member, peers: PeerLinks, instances: inout [String: [UInt8]], joined: Bool) async {
        guard let channel = member.metadata?.channelAddress, let instance = member.metadata?.instanceID else { return }
        let restarted = instances[member.id.hostID].map { $0 != instance } ?? false
        instances[member.id.hostID] = instance
        let address = HostPort(host: channel.host, port: Int(channel.port))
        let moved = peers.known.withLockedValue { known in
            defer { known[member.id.hostID] = address }
            return known[member.id.hostID] != address
        }
        guard joined || moved || restarted else { return }
        logger.info(joined ? "member joined" : moved ? "member moved" : "member restarted", metadata: [
            "mesh.peer": "\(member.id)", "mesh.incarnation": "\(member.incarnation)", "mesh.channel": "\(address)"])
        if credentials.identity.hostID < member.id.hostID { Task { await peers.greet(address) } }
    }

    /// Answers a channel another agent opened.
    private func serve(_ connection: SecureConnection, coordinator: MigrationCoordinator, peers: PeerLinks, membership: AgentMembership,
                       vms: VMManager) async {
        logger.info("peer proved its identity", metadata: proofMetadata(connection))
        var migrations = Set<String>()
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var reader = EnvelopeReader(inbound)
                while let envelope = try await reader.next() {
                    switch envelope.body {
                    case .hello(let hello):
                        try PeerLinks.checkClaim(hello, connection)
                        logger.info("hello", metadata: ["mesh.peer": "\(hello.hostID)", "mesh.software": "\(hello.software)"])
                        var reply = Hostmesh_V1_AgentEnvelope()
                        reply.helloReply = peers.hello()
                        try await outbound.write(EnvelopeWriter.frame(reply))
                        await peers.helloExchanged(hello, on: connection, initiatedHere: false)
                        var locations = Hostmesh_V1_AgentEnvelope()
                        locations.locationUpdate.locations = Data(await peers.network.locationSnapshot())
                        try await outbound.write(EnvelopeWriter.frame(locations))
                        if let records = try? await peers.ledger.records() {
                            var ownership = Hostmesh_V1_AgentEnvelope()
                            ownership.ownershipUpdate.records = records
                            try await outbound.write(EnvelopeWriter.frame(ownership))
                        }
                    case .ownershipUpdate(let update):
                        for vm in (try? await peers.ledger.apply(update.records)) ?? [] {
                            // A newer owner exists: a copy here must not run (fencing).
                            logger.error("stale VM copy fenced: another host owns it at a higher epoch", metadata: ["vm.id": "\(vm)", "mesh.peer": "\(connection.peer.hostID)"])
                            await vms.fence(vm)
                        }
                    case .pushPull(let request):
                        try await outbound.write(EnvelopeWriter.frame(try await membership.handlePushPull([UInt8](request.state), from: connection.peer)))
                    case .joinRequest:
                        try await outbound.write(EnvelopeWriter.frame(try await membership.handleJoin(from: connection.peer)))
                    case .locationUpdate(let update):
                        await peers.network.apply(locations: [UInt8](update.locations))
                    case .note(let note):
                        logger.info("encrypted note received", metadata: ["mesh.peer": "\(connection.peer.hostID)", "note": "\(note.text)"])
                    case .migrationPrepare(let prepare):
                        migrations.insert(prepare.migrationID)
                        fallthrough
                    case .migrationCommit, .migrationAbort, .migrationQuery:
                        if let reply = await coordinator.handle(envelope.body!, from: connection.peer) {
                            try await outbound.write(EnvelopeWriter.frame(reply))
                        }
                    case .helloReply, .migrationStream, .migrationPrepared, .migrationCommitted, .migrationVerdict, .pushPullReply, .joinAccepted, .none:
                        throw AgentError.protocolViolation("unexpected message from \(connection.peer.hostID)")
                    }
                }
            }
        } catch {
            let reason = await connection.failureReason().map { "\($0)" } ?? "\(error)"
            logger.warning("channel ended with an error", metadata: ["mesh.peer": "\(connection.peer.hostID)", "mesh.reason": "\(reason)"])
        }
        await coordinator.channelEnded(migrations: migrations)
    }

}

extension Agent: CustomStringConvertible {
    /// Short, and free of key material: service lifecycle logs it.
    public var description: String { "Agent(\(credentials.identity.hostID))" }
}
