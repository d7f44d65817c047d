import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Protocol.md §14.6: a federation grant of domain `lab` (the key of §14.1) for domain `prod`
/// (key from seed 0xa0..0xbf), version 1. Checked against the code and against libsodium with
/// the §13.1 field numbers written by hand.
@Suite struct FederationVectorTests {
    let vector: Vector
    init() throws { vector = try ProtocolDocument.load().vector("14.6 Federation grant") }

    static let peerSeed = Array(UInt8(0xa0)...0xbf)
    static let storage = "/srv/hostmesh/incoming"

    static func peer() throws -> DomainTrustAnchor {
        DomainTrustAnchor(name: "prod", key: try SigningKeyPair(seed: SecretBytes(peerSeed)).publicKey)
    }

    static func terms() throws -> FederationTerms {
        FederationTerms(peer: try peer(), allVMs: false, labels: ["web"], networks: [.init(peerNetwork: "front", localNetwork: "default")],
                        storageDirectory: storage, notBefore: VectorInputs.notBefore, notAfter: VectorInputs.notAfter)
    }

    @Test func theCodeSignsTheDocumentedGrant() throws {
        let grant = try VectorInputs.domain().federate(Self.terms(), after: nil, now: VectorInputs.now)
        expectHex(grant.bodyBytes, vector, "body", by: "the code")
        expectHex(grant.signature, vector, "signature", by: "the code")
        expectHex(grant.serialized, vector, "grant", by: "the code")
    }

    @Test func libsodiumComputesTheDocumentedGrant() throws {
        let domain = Libsodium.signingKeyPair(seed: VectorInputs.domainSeed)
        let peer = Libsodium.signingKeyPair(seed: Self.peerSeed)
        var mapping = ProtobufWriter()
        mapping.string(1, "front")
        mapping.string(2, "default")
        var body = ProtobufWriter()
        body.uint(1, 1)
        body.string(2, VectorInputs.domainName)
        body.bytes(3, domain.public)
        body.string(4, "prod")
        body.bytes(5, peer.public)
        body.uint(6, 1)
        body.int(7, VectorInputs.now)
        body.int(8, VectorInputs.notBefore)
        body.int(9, VectorInputs.notAfter)
        body.string(11, "web")
        body.bytes(12, mapping.bytes, always: true)
        body.string(13, Self.storage)
        expectHex(body.bytes, vector, "body", by: "the §13.1 field numbers")
        let signature = Libsodium.sign(Array("hostmesh-federation-v1".utf8) + body.bytes, secretKey: domain.secret)
        expectHex(signature, vector, "signature", by: "libsodium")
        var grant = ProtobufWriter()
        grant.bytes(1, body.bytes)
        grant.bytes(2, signature)
        expectHex(grant.bytes, vector, "grant", by: "libsodium")
    }

    @Test func theGrantVerifiesAndLetsProdHostsInForFederationChannelsOnly() throws {
        let domain = try VectorInputs.domain()
        let trust = TrustStore(anchors: [domain.trustAnchor], clockSkewSeconds: 0)
        let grant = try FederationGrant(serialized: try vector.bytes("grant"))
        try trust.verify(grant, localDomain: "lab", now: VectorInputs.now)
        trust.federation.install(grant, now: VectorInputs.now)
        let prod = try DomainAuthority(name: "prod", signingKey: SigningKeyPair(seed: SecretBytes(Self.peerSeed)))
        let host = prod.certify(try VectorInputs.identity("p1", seed: VectorInputs.responderSeed).publicKeys, serial: 1,
                                notBefore: VectorInputs.notBefore, notAfter: VectorInputs.notAfter)
        try trust.verify(host, now: VectorInputs.now, purpose: "federation")
        #expect(throws: IdentityError.self) { try trust.verify(host, now: VectorInputs.now, purpose: "sync") }
        #expect(throws: IdentityError.self) { try trust.verify(grant, localDomain: "prod", now: VectorInputs.now) }
    }
}
