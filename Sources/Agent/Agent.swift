import Foundation
public import Logging
import MeshWire
import NIOCore
import NIOPosix
public import SecureChannel
public import ServiceLifecycle

/// The hostmesh node: accepts secure channels from other agents and greets its configured
/// peers. Later capabilities (membership, VMs, migration) hang off this service.
public struct Agent: Service {
    /// Software identification sent in hellos.
    public static let software = "hostmesh 0.1.0"

    private let configuration: AgentConfiguration
    private let credentials: ChannelCredentials
    private let logger: Logger
    private let onListening: @Sendable (HostPort) -> Void

    /// An agent with loaded credentials. `onListening` is told the bound channel address.
    public init(configuration: AgentConfiguration, credentials: ChannelCredentials, logger: Logger,
                onListening: @escaping @Sendable (HostPort) -> Void = { _ in }) {
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.onListening = onListening
    }

    private var channelConfiguration: SecureChannelConfiguration {
        SecureChannelConfiguration(credentials: credentials)
    }

    public func run() async throws {
        let listen = configuration.channelListen
        let listener = try await SecureChannelListener.bind(host: listen.host, port: listen.port, configuration: channelConfiguration, logger: logger)
        let bound = HostPort(host: listen.host, port: listener.localAddress?.port ?? listen.port)
        logger.info("agent listening", metadata: [
            "mesh.host": "\(credentials.identity.hostID)", "mesh.domain": "\(credentials.certificate.domain)",
            "mesh.key": "\(credentials.identity.signingKey.publicKey.fingerprint)", "mesh.listen": "\(bound)",
        ])
        onListening(bound)
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask {
                    try await listener.run(onRefusal: { _, _ in }) { connection in await serve(connection) }
                }
                for peer in configuration.peers {
                    group.addTask { await greet(peer) }
                }
            }
        } onGracefulShutdown: {
            Task { await listener.close() }
        }
    }

    private func hello() -> Hostmesh_V1_AgentHello {
        var hello = Hostmesh_V1_AgentHello()
        hello.hostID = credentials.identity.hostID
        hello.software = Self.software
        hello.unixTime = Int64(Date().timeIntervalSince1970)
        return hello
    }

    private func proofMetadata(_ connection: SecureConnection) -> Logger.Metadata {
        let cert = connection.peer.certificate
        return [
            "mesh.peer": "\(connection.peer.hostID)", "mesh.domain": "\(connection.peer.domain)",
            "mesh.cert_serial": "\(cert.serial)", "mesh.peer_key": "\((try? cert.identityKey().fingerprint) ?? "?")",
            "mesh.aead": "\(connection.session.aead.rawValue)",
        ]
    }

    /// Answers a channel another agent opened.
    private func serve(_ connection: SecureConnection) async {
        logger.info("peer proved its identity", metadata: proofMetadata(connection))
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var reader = EnvelopeReader(inbound)
                while let envelope = try await reader.next() {
                    switch envelope.body {
                    case .hello(let hello):
                        try checkClaim(hello, connection)
                        logger.info("hello", metadata: ["mesh.peer": "\(hello.hostID)", "mesh.software": "\(hello.software)"])
                        var reply = Hostmesh_V1_AgentEnvelope()
                        reply.helloReply = self.hello()
                        try await outbound.write(EnvelopeWriter.frame(reply))
                    case .note(let note):
                        logger.info("encrypted note received", metadata: ["mesh.peer": "\(connection.peer.hostID)", "note": "\(note.text)"])
                    case .helloReply, .migrationStream, .none:
                        throw AgentError.protocolViolation("unexpected message from \(connection.peer.hostID)")
                    }
                }
            }
        } catch {
            let reason = await connection.failureReason().map { "\($0)" } ?? "\(error)"
            logger.warning("channel ended with an error", metadata: ["mesh.peer": "\(connection.peer.hostID)", "mesh.reason": "\(reason)"])
        }
    }

    /// Opens a channel to a configured peer, exchanges hellos and an encrypted note.
    private func greet(_ peer: HostPort) async {
        do {
            let connection = try await SecureConnection.connect(host: peer.host, port: peer.port, configuration: channelConfiguration, logger: logger)
            logger.info("peer proved its identity", metadata: proofMetadata(connection).merging(["mesh.address": "\(peer)"]) { a, _ in a })
            try await connection.channel.executeThenClose { inbound, outbound in
                var hello = Hostmesh_V1_AgentEnvelope()
                hello.hello = self.hello()
                try await outbound.write(EnvelopeWriter.frame(hello))
                var reader = EnvelopeReader(inbound)
                guard case .helloReply(let reply)? = try await reader.next()?.body else {
                    throw AgentError.protocolViolation("\(peer) did not answer the hello")
                }
                try checkClaim(reply, connection)
                logger.info("hello reply", metadata: ["mesh.peer": "\(reply.hostID)", "mesh.software": "\(reply.software)",
                                                      "mesh.clock_skew_s": "\(reply.unixTime - Int64(Date().timeIntervalSince1970))"])
                var note = Hostmesh_V1_AgentEnvelope()
                note.note.text = "greetings from \(credentials.identity.hostID), sealed with \(connection.session.aead.rawValue)"
                try await outbound.write(EnvelopeWriter.frame(note))
            }
        } catch {
            logger.error("could not establish a secure channel", metadata: ["mesh.address": "\(peer)", "mesh.reason": "\(error)"])
        }
    }

    private func checkClaim(_ hello: Hostmesh_V1_AgentHello, _ connection: SecureConnection) throws {
        guard hello.hostID == connection.peer.hostID else {
            throw AgentError.protocolViolation("hello claims \(hello.hostID) but the certificate proves \(connection.peer.hostID)")
        }
    }
}
