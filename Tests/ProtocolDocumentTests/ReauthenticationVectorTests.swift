import MeshCrypto
import MeshIdentity
import MeshWire
@testable import SecureChannel
import Testing

/// Protocol.md §14.7: on the channel of §14.2, node-b (the responder) rotates to the key from
/// seed c0..df and re-authenticates in place (§3.9): its new certificate, the rotation record and
/// the ChannelReauth. Checked against the code and against libsodium with the §13 field numbers
/// written by hand; then node-a's side accepts it.
@Suite struct ReauthenticationVectorTests {
    let vector: Vector
    let binding: [UInt8]
    init() throws {
        let document = try ProtocolDocument.load()
        vector = try document.vector("14.7 Re-authentication")
        binding = try document.vector("14.2 Handshake").bytes("handshake_hash")
    }

    static let newSeed = Array(UInt8(0xc0)...0xdf)

    static func notice() throws -> KeyRotationNotice {
        let domain = try VectorInputs.domain()
        let old = try VectorInputs.identity(VectorInputs.responderHost, seed: VectorInputs.responderSeed)
        let new = try VectorInputs.identity(VectorInputs.responderHost, seed: newSeed)
        let certificate = domain.certify(new.publicKeys, serial: 3, notBefore: VectorInputs.notBefore, notAfter: VectorInputs.notAfter)
        return KeyRotationNotice(identity: new, certificate: certificate,
                                 record: RotationRecord(from: old, to: new, domain: VectorInputs.domainName, now: VectorInputs.now))
    }

    @Test func theCodeProducesTheDocumentedReauthentication() throws {
        let notice = try Self.notice()
        expectHex(notice.certificate.serialized, vector, "new_certificate", by: "the code")
        expectHex(notice.record.serialized, vector, "rotation", by: "the code")
        let reauth = ChannelReauthentication.message(binding: binding, fromInitiator: false, sequence: 1, rotation: notice)
        let wire = try Hostmesh_V1_ChannelReauth(serializedBytes: reauth)
        expectHex([UInt8](wire.body), vector, "body", by: "the code")
        expectHex([UInt8](wire.signature), vector, "signature", by: "the code")
        expectHex(reauth, vector, "reauth", by: "the code")
    }

    @Test func libsodiumProducesTheDocumentedReauthentication() throws {
        let domain = Libsodium.signingKeyPair(seed: VectorInputs.domainSeed)
        let old = Libsodium.signingKeyPair(seed: VectorInputs.responderSeed)
        let new = Libsodium.signingKeyPair(seed: Self.newSeed)
        let newStatic = Libsodium.x25519Public(fromEd25519: new.public)
        let certificateBody = VectorInputs.referenceBody(host: VectorInputs.responderHost, identityKey: new.public, staticKey: newStatic,
                                                         domainKey: domain.public, serial: 3, extensionCritical: nil)
        let certificate = VectorInputs.referenceCertificate(body: certificateBody).certificate
        expectHex(certificate, vector, "new_certificate", by: "the §13.1 field numbers")
        var rotationBody = ProtobufWriter()
        rotationBody.uint(1, 1)
        rotationBody.string(2, VectorInputs.responderHost)
        rotationBody.string(3, VectorInputs.domainName)
        rotationBody.bytes(4, old.public)
        rotationBody.bytes(5, new.public)
        rotationBody.bytes(6, newStatic)
        rotationBody.int(7, VectorInputs.now)
        let context = Array("hostmesh-rotation-v1".utf8)
        var rotation = ProtobufWriter()
        rotation.bytes(1, rotationBody.bytes)
        rotation.bytes(2, Libsodium.sign(context + rotationBody.bytes, secretKey: old.secret))
        rotation.bytes(3, Libsodium.sign(context + rotationBody.bytes, secretKey: new.secret))
        expectHex(rotation.bytes, vector, "rotation", by: "libsodium")
        var body = ProtobufWriter()
        body.uint(1, 1)
        body.bytes(2, binding)
        body.bool(3, false)
        body.uint(4, 1)
        body.bytes(5, certificate, always: true)
        body.bytes(6, rotation.bytes)
        expectHex(body.bytes, vector, "body", by: "the §13.2 field numbers")
        let signature = Libsodium.sign(Array("hostmesh-reauth-v1".utf8) + body.bytes, secretKey: new.secret)
        expectHex(signature, vector, "signature", by: "libsodium")
        var reauth = ProtobufWriter()
        reauth.bytes(1, body.bytes)
        reauth.bytes(2, signature)
        expectHex(reauth.bytes, vector, "reauth", by: "libsodium")
    }

    @Test func theInitiatorAcceptsTheDocumentedReauthentication() throws {
        let domain = try VectorInputs.domain()
        let trust = TrustStore(anchors: [domain.trustAnchor], clockSkewSeconds: 0)
        let initiatorKey = try VectorInputs.identity(VectorInputs.initiatorHost, seed: VectorInputs.initiatorSeed).signingKey.publicKey
        var side = ChannelReauthentication(binding: binding, isInitiator: true, purpose: "control",
                                           peerCertificate: try VectorInputs.responderCertificate(), localKey: initiatorKey)
        let accepted = try side.accept(try vector.bytes("reauth"), trust: trust, now: VectorInputs.now)
        #expect(accepted.current.serial == 3 && accepted.sequence == 1)
        #expect(throws: SecureChannelError.self) { _ = try side.accept(try vector.bytes("reauth"), trust: trust, now: VectorInputs.now) } // replayed
    }
}
