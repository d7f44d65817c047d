import NIOConcurrencyHelpers
import NIOCore
@testable import SecureChannel
import Testing

/// An initiator may send data records right after message 3 (Protocol.md §3.6): a stream tunnel
/// installs its handlers then (`connectPipeline(early: true)`), half a round trip before the
/// responder's accept, and a refusal still reaches it as a failed connect with nothing delivered.
@Suite(.timeLimit(.minutes(1))) struct EarlyDataTests {
    let f = Fixtures()

    /// What `install` saw: whether the responder had accepted by then, and that it ran at all.
    final class Seen: Sendable {
        let installed = NIOLockedValueBox(false)
        let acceptedBeforeInstall = NIOLockedValueBox<Bool?>(nil)
    }

    /// Connects with `early`, writing `message` from `install`; records what `install` saw.
    func connect(_ credentials: ChannelCredentials, port: Int, early: Bool, message: String, seen: Seen) async throws -> (any Channel) {
        let configuration = SecureChannelConfiguration(credentials: credentials, policy: ChannelPolicy(targetDomain: f.lab.trustAnchor))
        let (channel, _) = try await SecureConnection.connectPipeline(host: "127.0.0.1", port: port, configuration: configuration,
                                                                      logger: testLogger, early: early) { channel, _ in
            let handler = try channel.pipeline.syncOperations.handler(type: SecureChannelHandler.self)
            // An accept already opened runs this callback at once, inside `install`.
            let inside = NIOLockedValueBox(true)
            handler.handshakeCompleted.whenSuccess { _ in
                if seen.acceptedBeforeInstall.withLockedValue({ $0 }) == nil { seen.acceptedBeforeInstall.withLockedValue { $0 = inside.withLockedValue { $0 } } }
            }
            inside.withLockedValue { $0 = false }
            // Not accepted yet: the callback above runs later, perhaps after the connect returned.
            seen.acceptedBeforeInstall.withLockedValue { if $0 == nil { $0 = false } }
            seen.installed.withLockedValue { $0 = true }
            channel.writeAndFlush(ByteBuffer(string: message), promise: nil)
        }
        return channel
    }

    @Test(arguments: [true, false])
    func earlyHandlersRunBeforeTheAcceptAndTheirBytesArrive(early: Bool) async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let seen = Seen()
        let channel = try await connect(f.host("node-a"), port: server.port, early: early, message: "hello", seen: seen)
        #expect(seen.installed.withLockedValue { $0 })
        #expect(seen.acceptedBeforeInstall.withLockedValue { $0 } == !early)
        #expect(await server.log.waitFor { $0.messages.joined() == "hello" })
        try await channel.close()
    }

    /// Padding (Protocol.md §3.6) goes where data may, right after message 3 too, to a peer that
    /// said in its identity that it accepts it; the peer delivers only the data around it.
    @Test func paddingBetweenEarlyBytesReachesNoApplication() async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let configuration = SecureChannelConfiguration(credentials: f.host("node-a"), policy: ChannelPolicy(targetDomain: f.lab.trustAnchor))
        let padded = NIOLockedValueBox<[Result<Void, any Error>]>([])
        let (channel, session) = try await SecureConnection.connectPipeline(host: "127.0.0.1", port: server.port, configuration: configuration,
                                                                            logger: testLogger, early: true) { channel, session in
            #expect(session.peerAcceptsPadding)
            channel.write(ByteBuffer(string: "one"), promise: nil)
            for _ in 0..<8 {
                channel.triggerUserOutboundEvent(SecureChannelPadding(length: 64 << 10)).whenComplete { result in padded.withLockedValue { $0.append(result) } }
            }
            channel.writeAndFlush(ByteBuffer(string: "two"), promise: nil)
        }
        #expect(session.peerAcceptsPadding)
        #expect(await server.log.waitFor { $0.messages.joined() == "onetwo" })
        #expect(padded.withLockedValue { $0.count == 8 && $0.allSatisfy { if case .success = $0 { true } else { false } } })
        try await channel.close()
    }

    /// A peer that did not say it accepts padding (an older agent, or `acceptsPadding` off) is
    /// sent none: the request fails on this side, and the channel carries on.
    @Test func noPaddingToAPeerThatDidNotSayItAcceptsIt() async throws {
        var policy = ChannelPolicy()
        policy.acceptsPadding = false
        let server = try await EchoServer.start(f.host("node-b"), policy: policy)
        defer { Task { await server.stop() } }
        let configuration = SecureChannelConfiguration(credentials: f.host("node-a"), policy: ChannelPolicy(targetDomain: f.lab.trustAnchor))
        let (channel, session) = try await SecureConnection.connectPipeline(host: "127.0.0.1", port: server.port, configuration: configuration,
                                                                            logger: testLogger) { _, _ in }
        #expect(!session.peerAcceptsPadding)
        await #expect(throws: SecureChannelError.self) { try await channel.triggerUserOutboundEvent(SecureChannelPadding(length: 1024)).get() }
        try await channel.writeAndFlush(ByteBuffer(string: "still open"))
        #expect(await server.log.waitFor { $0.messages.joined() == "still open" })
        #expect(await server.log.errors.isEmpty)
        try await channel.close()
    }

    @Test func aRefusalAfterEarlyBytesFailsTheConnectAndDeliversNothing() async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let seen = Seen()
        // The responder refuses an expired client at message 3, after the client verified it.
        await #expect {
            _ = try await connect(f.host("node-a", notAfter: f.now - 5), port: server.port, early: true, message: "secret", seen: seen)
        } throws: { error in
            (error as? SecureChannelError)?.code == .certificateExpired && (error as? SecureChannelError)?.byPeer == true
        }
        #expect(seen.installed.withLockedValue { $0 })
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .certificateExpired } })
        #expect(await server.log.messages.isEmpty)
    }

    /// A refusal at message 3 reaches the initiator with megabytes of its early records on their
    /// way (a stream's data and padding): the responder half-closes after its Close record and
    /// discards what comes (Protocol.md §3.8). (On loopback the reset a full close sent here did
    /// not lose the reason in this test's runs; a refused filler's did, `HandshakeFillerTests`.)
    @Test func aRefusalReachesAnInitiatorThatSentMegabytesEarly() async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        let configuration = SecureChannelConfiguration(credentials: f.host("node-a", notAfter: f.now - 5), policy: ChannelPolicy(targetDomain: f.lab.trustAnchor))
        await #expect {
            _ = try await SecureConnection.connectPipeline(host: "127.0.0.1", port: server.port, configuration: configuration,
                                                           logger: testLogger, early: true) { channel, _ in
                for _ in 0..<32 { channel.write(ByteBuffer(repeating: 7, count: 64 << 10), promise: nil) }
                channel.flush()
            }
        } throws: { error in
            (error as? SecureChannelError)?.code == .certificateExpired && (error as? SecureChannelError)?.byPeer == true
        }
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .certificateExpired } })
        #expect(await server.log.messages.isEmpty)
    }
}
