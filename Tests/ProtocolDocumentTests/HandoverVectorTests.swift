import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Protocol.md §14.9: node-a (the key and certificate of §14.1) hands VM `vm-1` at epoch 3 to
/// node-b at epoch 4 in migration `m-1`, signed at 1750000000, carried as one link of an
/// ownership record's evidence. Checked against the code and against libsodium with the §13.1
/// and §13.4 field numbers written by hand.
@Suite struct HandoverVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.9 Handover statement") }

    @Test func theCodeSignsTheDocumentedStatement() throws {
        let identity = try VectorInputs.identity(VectorInputs.initiatorHost, seed: VectorInputs.initiatorSeed)
        let statement = try HandoverStatement.sign(vm: "vm-1", epoch: 3, to: VectorInputs.responderHost, migration: "m-1", at: VectorInputs.now,
                                                   identity: identity, certificate: try VectorInputs.initiatorCertificate())
        expectHex(statement.bodyBytes, vector, "body", by: "the code")
        expectHex(statement.signature, vector, "signature", by: "the code")
        expectHex(try OwnershipEvidence.handover(statement).wire.serializedBytes(), vector, "link", by: "the code")
        // It verifies under the domain of §14.1 while the certificate is valid.
        let trust = TrustStore(anchors: [try VectorInputs.domain().trustAnchor])
        try trust.verify(statement)
    }

    @Test func libsodiumComputesTheDocumentedStatement() throws {
        let node = Libsodium.signingKeyPair(seed: VectorInputs.initiatorSeed)
        var body = ProtobufWriter()
        body.uint(1, 1)
        body.string(2, "vm-1")
        body.string(3, VectorInputs.initiatorHost)
        body.uint(4, 3)
        body.string(5, VectorInputs.responderHost)
        body.uint(6, 4)
        body.string(7, "m-1")
        body.int(8, VectorInputs.now)
        expectHex(body.bytes, vector, "body", by: "the §13.1 field numbers")
        let signature = Libsodium.sign(Array("hostmesh-handover-v1".utf8) + body.bytes, secretKey: node.secret)
        expectHex(signature, vector, "signature", by: "libsodium")
        var statement = ProtobufWriter()
        statement.bytes(1, body.bytes)
        statement.bytes(2, signature)
        statement.bytes(3, try VectorInputs.initiatorCertificate().serialized)
        var link = ProtobufWriter()
        link.bytes(1, statement.bytes, always: true)
        expectHex(link.bytes, vector, "link", by: "the §13.4 field numbers")
    }
}
