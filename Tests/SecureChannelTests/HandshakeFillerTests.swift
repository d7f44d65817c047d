import MeshCrypto
import NIOCore
@testable import SecureChannel
import Testing

/// Filler frames (Protocol.md §3.2): an initiator that knows its responder accepts them sends
/// some right after message 1, so that the connection's first round trip carries a full initial
/// window; the responder discards them, only between message 1 and message 3, at most 64 KiB,
/// and says in its identity that it does (`accepts_filler`). A responder that does not closes the
/// channel as on an unknown frame.
@Suite(.timeLimit(.minutes(1))) struct HandshakeFillerTests {
    let f = Fixtures()

    @Test func fillerIsSplitIntoHandshakeSizedFramesAndCapped() throws {
        #expect(HandshakeInitiator.filler(0).isEmpty)
        for bytes in [1, 4095, 4096, 13 << 10, 64 << 10, 1 << 20] {
            var buffer = ByteBuffer(bytes: HandshakeInitiator.filler(bytes))
            var total = 0
            let decoder = FrameDecoder(maxRecordPayload: 1 << 20, acceptsRecords: false)
            while let frame = try decoder.next(from: &buffer) {
                #expect(frame.type == .filler && frame.lengthField <= UInt32(FrameDecoder.maxHandshakeFrameLength))
                #expect(frame.body.readableBytesView.allSatisfy { $0 == 0 })
                total += frame.body.readableBytes
            }
            #expect(buffer.readableBytes == 0)
            #expect(total == min(bytes, FrameDecoder.maxFillerBytes), "\(bytes) bytes asked")
        }
    }

    @Test func theResponderDiscardsFillerOnlyBetweenMessageOneAndThree() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        var policy = ChannelPolicy()
        policy.handshakeFillerBytes = 13 << 10
        var i = try HandshakeInitiator(credentials: a, policy: policy, ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        var flight = ByteBuffer(bytes: i.start())
        let decoder = FrameDecoder(maxRecordPayload: 1 << 20, acceptsRecords: false)
        let m1 = try #require(try decoder.next(from: &flight))
        let filler = try #require(try decoder.next(from: &flight))
        #expect(m1.type == .handshakeInit && filler.type == .filler)
        // Before message 1 was answered: refused.
        #expect(throws: SecureChannelError.self) { var early = r; try early.discardFiller(filler) }
        let m2 = try Fixtures.frame(r.respond(to: r.validateInit(m1), ephemeral: KeyAgreementKeyPair()))
        try r.discardFiller(filler)
        while let more = try decoder.next(from: &flight) { try r.discardFiller(more) }
        let (m3, initiatorSession) = try i.receive(m2, now: f.now)
        #expect(initiatorSession.peerAcceptsFiller)
        guard case .established(let responderSession) = try r.receiveFinish(Fixtures.frame(m3), now: f.now) else {
            Issue.record("the filler's initiator was refused")
            return
        }
        #expect(responderSession.peerAcceptsFiller)
        // After message 3: refused (the shell's record opener refuses any non-record frame then).
        #expect(throws: SecureChannelError.self) { try r.discardFiller(filler) }
        var opener = RecordOpener(session: responderSession)
        var plain = ByteBuffer()
        #expect(throws: SecureChannelError.self) { _ = try opener.open(filler, appendingTo: &plain) }
    }

    @Test func aResponderRefusesFillerPastItsBoundOrWhenItDoesNotAcceptAny() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        let frame = try Fixtures.frame(HandshakeWire.frame(.filler, [UInt8](repeating: 0, count: 4095)))
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        _ = try r.respond(to: r.validateInit(Fixtures.frame(i.start())), ephemeral: KeyAgreementKeyPair())
        for _ in 0..<(FrameDecoder.maxFillerBytes / 4095) { try r.discardFiller(frame) }
        #expect(throws: SecureChannelError.self) { try r.discardFiller(frame) }

        var refusing = ChannelPolicy()
        refusing.acceptsFiller = false
        var j = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var s = HandshakeResponder(credentials: b, policy: refusing)
        let m2 = try Fixtures.frame(s.respond(to: s.validateInit(Fixtures.frame(j.start())), ephemeral: KeyAgreementKeyPair()))
        #expect(throws: SecureChannelError.self) { var t = s; try t.discardFiller(frame) }
        // It says so: an initiator learns not to send any.
        #expect(!(try j.receive(m2, now: f.now)).session.peerAcceptsFiller)
    }

    @Test func aChannelOpenedWithFillerCarriesItsData() async throws {
        let server = try await EchoServer.start(f.host("node-b"))
        defer { Task { await server.stop() } }
        var policy = ChannelPolicy(targetDomain: f.lab.trustAnchor)
        policy.handshakeFillerBytes = 13 << 10
        let connection = try await SecureConnection.connect(host: "127.0.0.1", port: server.port,
                                                            configuration: SecureChannelConfiguration(credentials: f.host("node-a"), policy: policy),
                                                            logger: testLogger)
        #expect(connection.session.peerAcceptsFiller)
        try await connection.channel.executeThenClose { _, outbound in
            try await outbound.write(ByteBuffer(string: "after filler"))
            #expect(await server.log.waitFor { $0.messages.joined() == "after filler" })
        }
        #expect(await server.log.errors.isEmpty)
    }

    @Test func aResponderThatDoesNotAcceptFillerClosesTheChannel() async throws {
        var refusing = ChannelPolicy()
        refusing.acceptsFiller = false
        let server = try await EchoServer.start(f.host("node-b"), policy: refusing)
        defer { Task { await server.stop() } }
        var policy = ChannelPolicy(targetDomain: f.lab.trustAnchor)
        policy.handshakeFillerBytes = 4 << 10
        await #expect(throws: SecureChannelError.self) {
            _ = try await SecureConnection.connect(host: "127.0.0.1", port: server.port,
                                                   configuration: SecureChannelConfiguration(credentials: f.host("node-a"), policy: policy),
                                                   logger: testLogger)
        }
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .protocolViolation } })
        #expect(await server.log.messages.isEmpty)
    }
}
