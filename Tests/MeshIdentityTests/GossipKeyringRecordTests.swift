import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
import Testing

/// Signed gossip keyring records (Protocol.md §4.17): who may sign one (the domain key or an
/// issuer of the domain), what the structure check refuses, each refusal naming the cause.
@Suite struct GossipKeyringRecordTests {
    let domain = try! DomainAuthority(name: "lab")
    let now: Int64 = 1_800_000_000
    let commitment = [UInt8](repeating: 7, count: 32)

    func body(domain name: String = "lab", version: UInt64 = 1, ids: [UInt32] = [0x0102_0304], primary: UInt32 = 0x0102_0304) -> Hostmesh_V1_TrustGossipKeyringBody {
        GossipKeyringRecord.body(domain: name, version: version, issuedAt: now, entries: ids.map { .init(id: $0, commitment: commitment) }, primary: primary)
    }

    func refusal(_ body: () throws -> Void) -> String {
        do { try body(); return "" } catch { return "\(error)" }
    }

    @Test func theDomainKeySignsARecordEveryHostOfTheDomainAccepts() throws {
        let record = try domain.signGossipKeyring(body(version: 3))
        let trust = TrustStore(anchors: [domain.trustAnchor])
        try trust.verify(record, now: now)
        let decoded = try GossipKeyringRecord(serialized: record.serialized)
        #expect(decoded == record && decoded.version == 3 && decoded.primaryKeyID == 0x0102_0304 && decoded.issuer == nil)
        #expect(decoded.entries == [.init(id: 0x0102_0304, commitment: commitment)])
    }

    @Test func anIssuerSignsWithItsDelegationAndAHostKeyAloneDoesNot() throws {
        let host = try HostIdentity(hostID: "issuer-1")
        let delegation = domain.delegate(to: host.publicKeys, serial: 50, notBefore: now - 60, notAfter: now + 86_400, maxLifetime: 86_400)
        let issuer = try CertificateIssuer(certificate: delegation, identity: host)
        let trust = TrustStore(anchors: [domain.trustAnchor])
        try trust.verify(try issuer.signGossipKeyring(body()), now: now)
        // A host of the domain that is no issuer: its key vouches for nothing.
        let other = try DomainAuthority(name: "lab", signingKey: try HostIdentity(hostID: "node-2").signingKey)
        let forged = try other.signGossipKeyring(body())
        #expect(refusal { try trust.verify(forged, now: now) }.contains("not the domain key of \"lab\""))
        // The issuer's delegation is for its own domain only.
        #expect(refusal { _ = try issuer.signGossipKeyring(body(domain: "prod")) }.contains("signs for \"lab\" only"))
        // An expired delegation signs nothing.
        #expect(refusal { try trust.verify(try issuer.signGossipKeyring(body()), now: now + 90_000) }.contains("its issuer is refused"))
    }

    @Test func anAlteredRecordOrOneForAnUntrustedDomainIsRefused() throws {
        let record = try domain.signGossipKeyring(body())
        var wire = try Hostmesh_V1_TrustGossipKeyring(serializedBytes: record.serialized)
        var altered = body(version: 9)
        altered.signerKey = Data(domain.signingKey.publicKey.bytes)
        wire.body = try altered.serializedBytes()
        let tampered = try GossipKeyringRecord(serialized: try wire.serializedBytes())
        let trust = TrustStore(anchors: [domain.trustAnchor])
        #expect(refusal { try trust.verify(tampered, now: now) }.contains("signature does not verify"))
        #expect(refusal { try TrustStore(anchors: []).verify(record, now: now) }.contains("which this host does not trust"))
    }

    @Test func theStructureCheckNamesWhatIsWrong() throws {
        #expect(refusal { _ = try domain.signGossipKeyring(body(version: 0)) }.contains("version 0"))
        #expect(refusal { _ = try domain.signGossipKeyring(body(ids: [])) }.contains("names 0 keys"))
        #expect(refusal { _ = try domain.signGossipKeyring(body(ids: [1, 1], primary: 1)) }.contains("a key id twice"))
        #expect(refusal { _ = try domain.signGossipKeyring(body(ids: [1, 2], primary: 3)) }.contains("primary key 00000003 is not one of its keys"))
        #expect(refusal { _ = try domain.signGossipKeyring(body(ids: Array(1...17), primary: 1)) }.contains("1 to 16"))
        #expect(refusal { _ = try GossipKeyringRecord(serialized: [0xff, 0x01]) }.contains("does not decode"))
    }
}
