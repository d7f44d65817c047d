import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Protocol.md §14.5: a revocation list of domain `lab` (the key of §14.1), version 2, revoking
/// host `node-c` and certificate serial 7. Checked against the code and against libsodium with
/// the §13.1 field numbers written by hand.
@Suite struct RevocationVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.5 Revocation list") }

    static func entries() -> [Hostmesh_V1_RevocationEntry] {
        var host = Hostmesh_V1_RevocationEntry()
        host.hostID = "node-c"
        host.revokedAt = 1_749_000_000
        host.reason = "key leaked"
        var serial = Hostmesh_V1_RevocationEntry()
        serial.serial = 7
        serial.revokedAt = 1_750_000_000
        return [host, serial]
    }

    @Test func theCodeSignsTheDocumentedList() throws {
        let list = try VectorInputs.domain().signRevocations(Self.entries(), version: 2, issuedAt: VectorInputs.now)
        expectHex(list.bodyBytes, vector, "body", by: "the code")
        expectHex(list.signature, vector, "signature", by: "the code")
        expectHex(list.serialized, vector, "list", by: "the code")
    }

    @Test func libsodiumComputesTheDocumentedList() throws {
        let domain = Libsodium.signingKeyPair(seed: VectorInputs.domainSeed)
        var first = ProtobufWriter()
        first.string(1, "node-c")
        first.int(3, 1_749_000_000)
        first.string(4, "key leaked")
        var second = ProtobufWriter()
        second.uint(2, 7)
        second.int(3, 1_750_000_000)
        var body = ProtobufWriter()
        body.uint(1, 1)
        body.string(2, VectorInputs.domainName)
        body.bytes(3, domain.public)
        body.uint(4, 2)
        body.int(5, VectorInputs.now)
        body.bytes(6, first.bytes, always: true)
        body.bytes(6, second.bytes, always: true)
        expectHex(body.bytes, vector, "body", by: "the §13.1 field numbers")
        let signature = Libsodium.sign(Array("hostmesh-revocations-v1".utf8) + body.bytes, secretKey: domain.secret)
        expectHex(signature, vector, "signature", by: "libsodium")
        var list = ProtobufWriter()
        list.bytes(1, body.bytes)
        list.bytes(2, signature)
        expectHex(list.bytes, vector, "list", by: "libsodium")
    }

    @Test func theListVerifiesAndRevokesTheHostAndTheSerial() throws {
        let domain = try VectorInputs.domain()
        let trust = TrustStore(anchors: [domain.trustAnchor], clockSkewSeconds: 0)
        let list = try RevocationList(serialized: try vector.bytes("list"))
        try trust.verify(list)
        trust.revocations.install(list)
        let nodeC = try VectorInputs.identity("node-c", seed: VectorInputs.responderSeed)
        let revokedHost = domain.certify(nodeC.publicKeys, serial: 3, notBefore: VectorInputs.notBefore, notAfter: VectorInputs.notAfter)
        let revokedSerial = try VectorInputs.identity("node-d", seed: VectorInputs.responderSeed)
        #expect(throws: IdentityError.self) { try trust.verify(revokedHost, now: VectorInputs.now) }
        #expect(throws: IdentityError.self) {
            try trust.verify(domain.certify(revokedSerial.publicKeys, serial: 7, notBefore: VectorInputs.notBefore, notAfter: VectorInputs.notAfter),
                             now: VectorInputs.now)
        }
        try trust.verify(try VectorInputs.initiatorCertificate(), now: VectorInputs.now) // node-a, serial 1: not revoked
    }
}
