import MeshCrypto
import MeshIdentity
import NIOCore
@testable import SecureChannel
import Testing

/// Protocol.md §14.2: a whole handshake with fixed keys (§3.3-3.5): the three framed messages,
/// the handshake hash and the traffic keys. Checked against the code's handshake cores and
/// against a Noise XX written here from libsodium calls.
@Suite struct HandshakeVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.2 Handshake") }

    static let offered = ["aes-256-gcm", "xchacha20-poly1305"]
    static let chosen = "xchacha20-poly1305"
    static let maxRecord: UInt64 = 262_144

    @Test func theCodeProducesTheDocumentedHandshake() throws {
        let trust = TrustStore(anchors: [try VectorInputs.domain().trustAnchor], clockSkewSeconds: 0)
        let a = ChannelCredentials(identity: try VectorInputs.identity(VectorInputs.initiatorHost, seed: VectorInputs.initiatorSeed),
                                   certificate: try VectorInputs.initiatorCertificate(), trust: trust)
        let b = ChannelCredentials(identity: try VectorInputs.identity(VectorInputs.responderHost, seed: VectorInputs.responderSeed),
                                   certificate: try VectorInputs.responderCertificate(), trust: trust)
        var initiator = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(aeads: [.aes256gcm, .xchacha20poly1305], purpose: "control"),
                                               ephemeral: try KeyAgreementKeyPair(privateKey: SecretBytes(VectorInputs.initiatorEphemeral)))
        var responder = HandshakeResponder(credentials: b, policy: ChannelPolicy(aeads: [.xchacha20poly1305]))
        let responderEphemeral = try KeyAgreementKeyPair(privateKey: SecretBytes(VectorInputs.responderEphemeral))
        expectHex(try VectorInputs.responderCertificate().serialized, vector, "responder_certificate", by: "the code")
        let m1 = initiator.start()
        expectHex(m1, vector, "message1", by: "the code")
        // From here the code is fed the document's bytes, so each step is checked on its own.
        let m2 = try responder.respond(to: responder.validateInit(frame(vector.bytes("message1"))), ephemeral: responderEphemeral)
        expectHex(m2, vector, "message2", by: "the code")
        let (m3, initiatorSession) = try initiator.receive(frame(vector.bytes("message2")), now: VectorInputs.now)
        expectHex(m3, vector, "message3", by: "the code")
        guard case .established(let responderSession) = try responder.receiveFinish(frame(vector.bytes("message3")), now: VectorInputs.now) else {
            Issue.record("the responder refused the documented message 3")
            return
        }
        for session in [initiatorSession, responderSession] {
            #expect(session.aead == .xchacha20poly1305)
            expectHex(session.channelBinding, vector, "handshake_hash", by: "the code")
            expectHex(session.exporterSecret.revealForStorage(), vector, "exporter", by: "the code")
        }
        expectHex(initiatorSession.sendKey.revealForStorage(), vector, "key_i2r", by: "the initiator")
        expectHex(initiatorSession.receiveKey.revealForStorage(), vector, "key_r2i", by: "the initiator")
        expectHex(responderSession.receiveKey.revealForStorage(), vector, "key_i2r", by: "the responder")
        expectHex(responderSession.sendKey.revealForStorage(), vector, "key_r2i", by: "the responder")
        #expect(initiatorSession.peer.hostID == "node-b" && responderSession.peer.hostID == "node-a" && responderSession.peer.purpose == "control")
    }

    @Test func libsodiumProducesTheDocumentedHandshake() throws {
        let domain = Libsodium.signingKeyPair(seed: VectorInputs.domainSeed)
        let a = Libsodium.signingKeyPair(seed: VectorInputs.initiatorSeed), b = Libsodium.signingKeyPair(seed: VectorInputs.responderSeed)
        let si = Libsodium.x25519Secret(fromEd25519: a.secret), sr = Libsodium.x25519Secret(fromEd25519: b.secret)
        let ei = VectorInputs.initiatorEphemeral, er = VectorInputs.responderEphemeral
        let eiPub = Libsodium.x25519Base(ei), erPub = Libsodium.x25519Base(er)

        // Certificates as §13.1 encodes them; node-b's has serial 2 and no extension.
        let certA = VectorInputs.referenceCertificate(body: VectorInputs.referenceBody(
            host: "node-a", identityKey: a.public, staticKey: Libsodium.x25519Base(si), domainKey: domain.public, serial: 1, extensionCritical: false)).certificate
        let certB = VectorInputs.referenceCertificate(body: VectorInputs.referenceBody(
            host: "node-b", identityKey: b.public, staticKey: Libsodium.x25519Base(sr), domainKey: domain.public, serial: 2, extensionCritical: nil)).certificate
        expectHex(certB, vector, "responder_certificate", by: "libsodium")

        // Payloads (§13.2): ChannelHello, ChannelIdentity.
        var hello = ProtobufWriter()
        hello.uint(1, 1)
        for name in Self.offered { hello.string(2, name) }
        hello.string(3, "control")
        hello.string(4, "node-a")
        func identity(_ certificate: [UInt8], aead: String) -> [UInt8] {
            var w = ProtobufWriter()
            w.bytes(1, certificate)
            w.string(2, aead)
            w.uint(3, Self.maxRecord)
            w.bool(4, true) // accepts_padding
            w.bool(5, true) // accepts_filler
            return w.bytes
        }

        // §3.3-3.4, Noise XX step by step.
        let hint = Array(Libsodium.blake2b(domain.public, length: 32).prefix(8))
        var h = Array("Noise_XX_25519_ChaChaPoly_BLAKE2b".utf8); h += [UInt8](repeating: 0, count: 64 - h.count)
        var ck = h, k: [UInt8] = [], n: UInt64 = 0
        func mixHash(_ data: [UInt8]) { h = Libsodium.blake2b(h + data) }
        func mixKey(_ dh: [UInt8]) { let out = Libsodium.hkdf(ck, dh, outputs: 2); ck = out[0]; k = Array(out[1].prefix(32)); n = 0 }
        func encryptAndHash(_ p: [UInt8]) -> [UInt8] { let c = Libsodium.chachaPoly(key: k, nonce: n, aad: h, p); n += 1; mixHash(c); return c }
        func framed(_ type: UInt8, _ body: [UInt8]) -> [UInt8] { ProtobufWriter.u32(UInt32(body.count + 1)) + [type] + body }
        mixHash(Array("hostmesh-channel-v1".utf8) + hint)

        // -> e (payload in clear), then mac1 over the frame so far.
        mixHash(eiPub); mixHash(hello.bytes)
        let covered = ProtobufWriter.u32(UInt32(8 + 32 + hello.bytes.count + 16 + 1)) + [0x01] + hint + eiPub + hello.bytes
        let mac1 = Libsodium.blake2b(covered, key: Libsodium.blake2b(Array("hostmesh-mac1-v1".utf8) + domain.public, length: 32), length: 16)
        expectHex(covered + mac1, vector, "message1", by: "libsodium")

        // <- e, ee, s, es
        mixHash(erPub)
        mixKey(Libsodium.x25519(er, eiPub))
        let encryptedStaticR = encryptAndHash(Libsodium.x25519Base(sr))
        mixKey(Libsodium.x25519(sr, eiPub))
        let payloadR = encryptAndHash(identity(certB, aead: Self.chosen))
        expectHex(framed(0x02, erPub + encryptedStaticR + payloadR), vector, "message2", by: "libsodium")

        // -> s, se
        let encryptedStaticI = encryptAndHash(Libsodium.x25519Base(si))
        mixKey(Libsodium.x25519(si, erPub))
        let payloadI = encryptAndHash(identity(certA, aead: ""))
        expectHex(framed(0x03, encryptedStaticI + payloadI), vector, "message3", by: "libsodium")

        // §3.5
        let split = Libsodium.hkdf(ck, [], outputs: 3)
        let label = Array("hostmesh-record-v1 \(Self.chosen)".utf8)
        expectHex(h, vector, "handshake_hash", by: "libsodium")
        expectHex(Libsodium.blake2b(label, key: split[0], length: 32), vector, "key_i2r", by: "libsodium")
        expectHex(Libsodium.blake2b(label, key: split[1], length: 32), vector, "key_r2i", by: "libsodium")
        expectHex(split[2], vector, "exporter", by: "libsodium")
    }

    func frame(_ bytes: [UInt8]) throws -> Frame {
        var buffer = ByteBuffer(bytes: bytes)
        guard let frame = try FrameDecoder(maxRecordPayload: 1 << 20).next(from: &buffer), buffer.readableBytes == 0 else {
            throw VectorError("a documented handshake message is not exactly one frame")
        }
        return frame
    }
}
