import GossipTransport
import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Protocol.md §14.8: a gossip keyring record of domain `lab` (the key of §14.1), version 2,
/// naming K2 (primary) and K1. Checked against the code and against libsodium with the §13.1
/// field numbers written by hand.
@Suite struct GossipKeyringVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.8 Gossip keyring record") }

    static let k1 = Array(UInt8(0x00)...0x1f)
    static let k2 = Array(UInt8(0x20)...0x3f)

    @Test func theCodeSignsTheDocumentedRecord() throws {
        let keys = [try GossipKey(bytes: Self.k2), try GossipKey(bytes: Self.k1)]
        expectHex(keys[1].commitment, vector, "commitment-K1", by: "the code")
        expectHex(keys[0].commitment, vector, "commitment-K2", by: "the code")
        let body = GossipKeyringRecord.body(domain: "lab", version: 2, issuedAt: VectorInputs.now,
                                            entries: keys.map { .init(id: $0.id.rawValue, commitment: $0.commitment) }, primary: keys[0].id.rawValue)
        let record = try VectorInputs.domain().signGossipKeyring(body)
        expectHex(record.bodyBytes, vector, "body", by: "the code")
        expectHex(record.signature, vector, "signature", by: "the code")
        expectHex(record.serialized, vector, "record", by: "the code")
    }

    static func fixed32(_ field: Int, _ value: UInt32) -> [UInt8] {
        [UInt8(field << 3 | 5)] + withUnsafeBytes(of: value.littleEndian, Array.init)
    }

    @Test func libsodiumComputesTheDocumentedRecord() throws {
        let domain = Libsodium.signingKeyPair(seed: VectorInputs.domainSeed)
        func id(_ key: [UInt8]) -> UInt32 {
            Libsodium.blake2b(Array("hostmesh-gossip-v1 key id".utf8), key: key, length: 16).prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
        }
        func commitment(_ key: [UInt8]) -> [UInt8] { Libsodium.blake2b(Array("hostmesh-gossip-v1 key commitment".utf8), key: key, length: 32) }
        #expect(id(Self.k1) == 0x0550_2b46, "§4.12.7's key id")
        expectHex(commitment(Self.k1), vector, "commitment-K1", by: "libsodium")
        expectHex(commitment(Self.k2), vector, "commitment-K2", by: "libsodium")
        var body = ProtobufWriter()
        body.uint(1, 1)
        body.string(2, VectorInputs.domainName)
        body.uint(3, 2)
        body.int(4, VectorInputs.now)
        body.bytes(5, domain.public)
        for key in [Self.k2, Self.k1] {
            let entry = Self.fixed32(1, id(key)) + [0x12, 32] + commitment(key)
            body.bytes(6, entry, always: true)
        }
        let bytes = body.bytes + Self.fixed32(7, id(Self.k2))
        expectHex(bytes, vector, "body", by: "the §13.1 field numbers")
        let signature = Libsodium.sign(Array("hostmesh-gossip-keyring-v1".utf8) + bytes, secretKey: domain.secret)
        expectHex(signature, vector, "signature", by: "libsodium")
        var record = ProtobufWriter()
        record.bytes(1, bytes)
        record.bytes(2, signature)
        expectHex(record.bytes, vector, "record", by: "libsodium")
    }

    @Test func theRecordVerifiesForLabAndIsRefusedElsewhere() throws {
        let domain = try VectorInputs.domain()
        let record = try GossipKeyringRecord(serialized: try vector.bytes("record"))
        try TrustStore(anchors: [domain.trustAnchor]).verify(record, now: VectorInputs.now)
        let k2 = try GossipKey(bytes: Self.k2)
        #expect(record.version == 2 && record.primaryKeyID == k2.id.rawValue)
        #expect(throws: IdentityError.self) { try TrustStore(anchors: []).verify(record, now: VectorInputs.now) }
    }
}
