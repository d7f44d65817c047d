import Foundation
import Logging
import MeshIdentity
import MeshWire
@testable import Migration
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SecureChannel
import Testing

/// Two hosts of one domain, as channel credentials.
struct TunnelFixtures {
    let domain = try! DomainAuthority(name: "lab")
    let now = Int64(Date().timeIntervalSince1970)

    func credentials(_ id: String) -> ChannelCredentials {
        let identity = try! HostIdentity(hostID: id)
        let cert = domain.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        return ChannelCredentials(identity: identity, certificate: cert, trust: TrustStore(anchors: [domain.trustAnchor]))
    }

    static var logger: Logger { var l = Logger(label: "test"); l.logLevel = .critical; return l }

    static func tempPath(_ name: String) -> String {
        NSTemporaryDirectory() + "hm-\(UUID().uuidString.prefix(8))-\(name)"
    }
}

/// A stand-in for the destination QEMU: a unix socket server that echoes every connection and
/// counts what it received.
struct EchoUnixServer {
    let channel: any Channel
    let received: NIOLockedValueBox<Int>

    static func start(path: String) async throws -> EchoUnixServer {
        let received = NIOLockedValueBox<Int>(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.pipeline.addHandler(EchoCounter(received: received))
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        return EchoUnixServer(channel: channel, received: received)
    }

    final class EchoCounter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let received: NIOLockedValueBox<Int>
        init(received: NIOLockedValueBox<Int>) { self.received = received }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.withLockedValue { $0 += unwrapInboundIn(data).readableBytes }
            context.write(data, promise: nil)
        }
        func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    }
}

@Suite(.timeLimit(.minutes(1))) struct StreamTunnelTests {
    let f = TunnelFixtures()

    func destination(qemuSocket: String, expectedMigration: String = "m1",
                     rateLimiter: SharedHandshakeRateLimiter = SharedHandshakeRateLimiter()) async throws -> (SecureChannelListener, Task<Void, any Error>) {
        let config = SecureChannelConfiguration(credentials: f.credentials("dst"))
        let listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: config, rateLimiter: rateLimiter,
                                                            logger: TunnelFixtures.logger) { session in
            guard session.peer.purpose == "migration-stream" else { return .application }
            return MigrationStreamAcceptor.route(session) { peer, hello in
                guard hello.migrationID == expectedMigration, peer.hostID == "src" else {
                    throw SecureChannelError(.protocolViolation, "no migration \(hello.migrationID) admitted from \(peer.hostID)")
                }
                return qemuSocket
            }
        }
        let task = Task { try await listener.run { _ in } }
        return (listener, task)
    }

    /// Plays the source QEMU: connects to the tunnel socket, sends `bytes`, returns what came back.
    func sourceQEMU(path: String, bytes: [UInt8]) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path) { ch in
                ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            async let sending: Void = {
                var offset = 0
                while offset < bytes.count {
                    let n = min(1 << 20, bytes.count - offset)
                    // A refused stream is closed under the writer: stop sending, report what came back.
                    guard (try? await outbound.write(ByteBuffer(bytes: bytes[offset..<(offset + n)]))) != nil else { return }
                    offset += n
                }
            }()
            var got = [UInt8](); got.reserveCapacity(bytes.count)
            do {
                for try await chunk in inbound {
                    got += chunk.readableBytesView
                    if got.count >= bytes.count { break }
                }
            } catch {
                // A refused stream may end in a reset (our unread bytes were discarded): it ended.
            }
            await sending
            return got
        }
    }

    @Test func streamsCrossTheTunnelIntactInBothDirections() async throws {
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        let (listener, task) = try await destination(qemuSocket: qemuSocket)
        defer { task.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: "m1", host: "127.0.0.1", port: listener.localAddress!.port!,
            congestionControl: .default, configuration: SecureChannelConfiguration(credentials: f.credentials("src"), policy: policy), logger: TunnelFixtures.logger)
        // Three concurrent streams, like QEMU's main channel plus two multifd channels.
        let payloads = (0..<3).map { s in (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* (s + 3)) } }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for p in payloads { group.addTask { try await sourceQEMU(path: tunnel.socketPath, bytes: p) == p } }
            for try await same in group { #expect(same) }
        }
        #expect(tunnel.streamsOpened == 3)
        #expect(echo.received.withLockedValue { $0 } == 3 * (8 << 20))
        await tunnel.close()
    }

    @Test func unauthorizedStreamsAreRefusedAndCarryNothing() async throws {
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        let (listener, task) = try await destination(qemuSocket: qemuSocket, expectedMigration: "other")
        defer { task.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: "m1", host: "127.0.0.1", port: listener.localAddress!.port!,
            congestionControl: .default, configuration: SecureChannelConfiguration(credentials: f.credentials("src")), logger: TunnelFixtures.logger)
        let back = try await sourceQEMU(path: tunnel.socketPath, bytes: [UInt8](repeating: 7, count: 1 << 16))
        #expect(back.isEmpty) // the source QEMU's connection is closed, nothing echoed
        #expect(echo.received.withLockedValue { $0 } == 0)
        await tunnel.close()
    }
}
