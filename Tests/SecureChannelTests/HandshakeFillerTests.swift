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

    /// A decoder in the state of a responder between message 1 and message 3.
    static var fillerDecoder: FrameDecoder {
        var decoder = FrameDecoder(maxRecordPayload: 1 << 20, acceptsRecords: false)
        decoder.acceptsFiller = true
        return decoder
    }

    static func frame(_ bytes: [UInt8]) throws -> Frame {
        var buffer = ByteBuffer(bytes: bytes)
        return try #require(try fillerDecoder.next(from: &buffer))
    }

    @Test func fillerIsSplitIntoHandshakeSizedFramesAndCapped() throws {
        #expect(HandshakeInitiator.filler(0).isEmpty)
        for bytes in [1, 5, 6, 4095, 4096, 4101, 13 << 10, 64 << 10, 1 << 20] {
            var buffer = ByteBuffer(bytes: HandshakeInitiator.filler(bytes))
            var wire = 0
            while let frame = try Self.fillerDecoder.next(from: &buffer) {
                #expect(frame.type == .filler && frame.lengthField <= UInt32(FrameDecoder.maxHandshakeFrameLength))
                #expect(frame.body.readableBytes > 0 && frame.body.readableBytesView.allSatisfy { $0 == 0 })
                wire += 4 + Int(frame.lengthField)
            }
            #expect(buffer.readableBytes == 0)
            // Bytes on the wire, headers counted; a tail too short for a frame with a body is left out.
            let asked = min(bytes, FrameDecoder.maxFillerBytes)
            #expect(wire <= asked && wire > asked - 6, "\(bytes) bytes asked, \(wire) sent")
        }
    }

    /// Only a responder between message 1 and message 3 takes a Filler frame's header at all.
    @Test func aDecoderRefusesFillerAtItsHeaderUnlessTold() throws {
        var buffer = ByteBuffer(bytes: [0, 0, 0x10, 0x00, 0x05])
        #expect(throws: SecureChannelError.self) { _ = try FrameDecoder(maxRecordPayload: 1 << 20, acceptsRecords: false).frameSize(at: buffer) }
        #expect(try Self.fillerDecoder.frameSize(at: buffer) == 4100)
        buffer = ByteBuffer(bytes: [0, 0, 0x10, 0x01, 0x05])
        #expect(throws: SecureChannelError.self) { _ = try Self.fillerDecoder.frameSize(at: buffer) }
    }

    @Test func theResponderDiscardsFillerOnlyBetweenMessageOneAndThree() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        var policy = ChannelPolicy()
        policy.handshakeFillerBytes = 13 << 10
        var i = try HandshakeInitiator(credentials: a, policy: policy, ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        var flight = ByteBuffer(bytes: i.start())
        let decoder = Self.fillerDecoder
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
        let frame = try Self.frame(HandshakeWire.frame(.filler, [UInt8](repeating: 0, count: 4095)))
        let empty = try Self.frame(HandshakeWire.frame(.filler, []))
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        _ = try r.respond(to: r.validateInit(Fixtures.frame(i.start())), ephemeral: KeyAgreementKeyPair())
        // On the wire, headers counted: 15 full frames (4,100 bytes each: 61,500) and one of
        // 4,036 reach 65,536 exactly; one empty frame more (5 bytes) is past the bound.
        for _ in 0..<15 { try r.discardFiller(frame) }
        var exact = r
        try exact.discardFiller(try Self.frame(HandshakeWire.frame(.filler, [UInt8](repeating: 0, count: 4031))))
        #expect(throws: SecureChannelError.self) { try exact.discardFiller(empty) }
        // Empty frames count too: 807 of them (4,035 bytes, 65,535 in all) fit, the 808th does not.
        for _ in 0..<807 { try r.discardFiller(empty) }
        #expect(throws: SecureChannelError.self) { try r.discardFiller(empty) }

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
        policy.handshakeFillerBytes = 13 << 10
        // The refusal's reason reaches the initiator: the responder half-closes after its Reject
        // and discards what still comes, where a full close with filler unread would reset the
        // connection and destroy the Reject before it is read.
        do {
            _ = try await SecureConnection.connect(host: "127.0.0.1", port: server.port,
                                                   configuration: SecureChannelConfiguration(credentials: f.host("node-a"), policy: policy),
                                                   logger: testLogger)
            Issue.record("a responder that does not accept filler completed the handshake")
        } catch let error as SecureChannelError {
            #expect(error.code == .protocolViolation && error.byPeer && "\(error)".contains("filler"), "\(error)")
        }
        #expect(await server.log.waitFor { $0.errors.contains { $0.code == .protocolViolation } })
        #expect(await server.log.messages.isEmpty)
    }
}
