import Foundation
import MeshCrypto
@testable import MeshIdentity
import MeshWire
import Testing

/// Delegated issuers (Protocol.md §2.6): certificates an issuer signs verify through its
/// delegation, within its domain, its lifetime limit and its validity, until it is revoked;
/// everything else is refused with a reason that names it.
@Suite struct IssuerCertificateTests {
    let domain = try! DomainAuthority(name: "lab")
    let now: Int64 = 1_800_000_000

    func issuer(_ id: String = "issuer-1", by authority: DomainAuthority? = nil, maxLifetime: Int64 = 7 * 86_400,
                notAfter: Int64? = nil) throws -> CertificateIssuer {
        let identity = try HostIdentity(hostID: id)
        let delegation = (authority ?? domain).delegate(to: identity.publicKeys, serial: 50, notBefore: now - 60,
                                                        notAfter: notAfter ?? now + 90 * 86_400, maxLifetime: maxLifetime)
        return try CertificateIssuer(certificate: delegation, identity: identity)
    }

    func reason(_ body: () throws -> Void) -> String {
        do { try body(); return "accepted" } catch { return "\(error)" }
    }

    @Test func aCertificateFromAnIssuerVerifiesThroughItsDelegationAndSurvivesTheWire() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let host = try HostIdentity(hostID: "node-2")
        let certificate = try issuer().certify(host.publicKeys, now: now, lifetime: 7 * 86_400)
        #expect(certificate.body.notAfter - certificate.body.notBefore == 7 * 86_400 && certificate.body.notBefore == now - 60) // clipped to the maximum
        #expect(certificate.serial >> 63 == 1)
        let received = try HostCertificate(serialized: certificate.serialized)
        #expect(received.issuer?.hostID == "issuer-1")
        #expect(try trust.verify(received, now: now).name == "lab")
    }

    @Test func anIssuerOutsideItsDomainIsRefusedNamingTheDomain() throws {
        let other = try DomainAuthority(name: "other")
        let trust = TrustStore(anchors: [domain.trustAnchor, other.trustAnchor])
        let issuer = try issuer()
        let host = try HostIdentity(hostID: "node-9")
        var body = Hostmesh_V1_CertificateBody()
        body.version = 1
        body.hostID = "node-9"
        body.domain = "other"
        body.issuerKey = Data(issuer.identity.signingKey.publicKey.bytes)
        body.identityKey = Data(host.signingKey.publicKey.bytes)
        body.staticKey = Data(host.staticKey.publicKey.bytes)
        body.notBefore = now - 60
        body.notAfter = now + 3_600
        body.serial = 1 << 63 | 9
        let forged = HostCertificate.issue(body, signer: issuer.identity.signingKey, issuer: issuer.certificate)
        #expect(reason { try trust.verify(forged, now: now) }.contains("may certify hosts of domain \"lab\" only; this is for \"other\""))
    }

    @Test func limitsOfTheDelegationAreEnforced() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let host = try HostIdentity(hostID: "node-2")
        // Longer than its maximum lifetime (signed by hand: `certify` clips to the maximum).
        let short = try issuer(maxLifetime: 3_600)
        var body = Hostmesh_V1_CertificateBody()
        body.version = 1
        body.hostID = "node-2"
        body.domain = "lab"
        body.issuerKey = Data(short.identity.signingKey.publicKey.bytes)
        body.identityKey = Data(host.signingKey.publicKey.bytes)
        body.staticKey = Data(host.staticKey.publicKey.bytes)
        body.notBefore = now
        body.notAfter = now + 86_400
        body.serial = 1 << 63
        let tooLong = HostCertificate.issue(body, signer: short.identity.signingKey, issuer: short.certificate)
        #expect(reason { try trust.verify(tooLong, now: now) }.contains("at most 3600 s"))
        #expect(try trust.verify(short.certify(host.publicKeys, now: now, lifetime: 86_400), now: now).name == "lab") // clipped
        // An expired delegation.
        let ending = try issuer(notAfter: now + 100)
        let late = ending.certify(host.publicKeys, now: now, lifetime: 3_000)
        #expect(reason { try trust.verify(late, now: now) } == "accepted")
        #expect(reason { try trust.verify(late, now: now + 200) }.contains("issuer certificate of issuer-1 is valid from"))
        // A delegation signed by a key that is not the domain's.
        let impostor = try DomainAuthority(name: "lab")
        #expect(reason { try trust.verify(try issuer(by: impostor).certify(host.publicKeys, now: now, lifetime: 60), now: now) }.contains("is not a trusted domain key"))
        // A host key signing without any delegation.
        let noDelegation = HostCertificate.issue(body, signer: short.identity.signingKey)
        #expect(reason { try trust.verify(noDelegation, now: now) }.contains("is not a trusted domain key"))
        // A delegation for one key presented with a certificate signed by another.
        let other = try issuer("issuer-2")
        body.issuerKey = Data(other.identity.signingKey.publicKey.bytes)
        body.notAfter = now + 600
        let mixed = HostCertificate.issue(body, signer: other.identity.signingKey, issuer: short.certificate)
        #expect(reason { try trust.verify(mixed, now: now) }.contains("not the key that signed this"))
        // An issuer that holds another host's delegation.
        #expect(reason { _ = try CertificateIssuer(certificate: short.certificate, identity: other.identity) }.contains("not to this host"))
    }

    @Test func aRevokedIssuerCertifiesNothingAnyMore() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let issuer = try issuer()
        let certificate = issuer.certify(try HostIdentity(hostID: "node-2").publicKeys, now: now, lifetime: 3_600)
        try trust.verify(certificate, now: now)
        trust.revocations.install(try domain.revoke(.host("issuer-1"), reason: "retired", after: nil, now: now))
        #expect(reason { try trust.verify(certificate, now: now) }.contains("the issuer: host issuer-1 (retired)"))
    }

    @Test func anIssuerSignsRevocationListsThatOnlyAddAndTheDomainKeyMayDrop() throws {
        let trust = TrustStore(anchors: [domain.trustAnchor])
        let issuer = try issuer()
        let v1 = try issuer.revoke(.host("node-5"), reason: "stolen", after: nil, now: now)
        #expect(v1.issuer?.hostID == "issuer-1")
        let received = try RevocationList(serialized: v1.serialized)
        try trust.verify(received, now: now)
        trust.revocations.install(received)
        #expect(throws: IdentityError.self) { try trust.verify(issuer.certify(try HostIdentity(hostID: "node-5").publicKeys, now: now, lifetime: 60), now: now) }
        // An issuer's version 2 that drops node-5: refused, naming the entry.
        var body = received.body
        body.version = 2
        body.entries = []
        let dropping = RevocationList.issue(body, signer: issuer.identity.signingKey, issuer: issuer.certificate)
        #expect(reason { try trust.verify(dropping, now: now) }.contains("may only add revocations, and this list drops host node-5 (stolen)"))
        // The domain key may drop it (an un-revocation is the domain's call).
        let undo = domain.signRevocations([], version: 2, issuedAt: now)
        try trust.verify(undo, now: now)
        // The list of an issuer of another domain, or a revoked issuer: refused.
        let other = try DomainAuthority(name: "other")
        let foreign = try self.issuer(by: other).revoke(.host("node-6"), reason: "", after: nil, now: now)
        #expect(reason { try trust.verify(foreign, now: now) }.contains("not a trusted domain key"))
        trust.revocations.install(try domain.revoke(.host("issuer-1"), reason: "retired", after: received, now: now))
        #expect(reason { try trust.verify(try issuer.revoke(.host("node-7"), reason: "", after: nil, now: now), now: now) }.contains("the issuer: host issuer-1 (retired)"))
    }
}
