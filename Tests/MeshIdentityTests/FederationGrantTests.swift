import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
import NIOConcurrencyHelpers
import Testing

/// Federation grants (Protocol.md §2.9): signed by the granting domain's key or an issuer,
/// versioned per peer domain, checked at every certificate verification of a host of the peer
/// domain (cross-domain purposes only) and by the admission check of a VM crossing.
@Suite struct FederationGrantTests {
    let lab = try! DomainAuthority(name: "lab")
    let prod = try! DomainAuthority(name: "prod")
    let now: Int64 = 1_800_000_000

    func terms(allVMs: Bool = true, labels: [String] = [], networks: [FederationTerms.NetworkMapping] = [.init(peerNetwork: "front", localNetwork: "default")],
               notAfter: Int64? = nil) -> FederationTerms {
        FederationTerms(peer: prod.trustAnchor, allVMs: allVMs, labels: labels, networks: networks, storageDirectory: "/srv/incoming",
                        notBefore: now - 60, notAfter: notAfter ?? now + 86_400)
    }

    func prodHost(_ id: String = "p1", issuer: CertificateIssuer? = nil) throws -> HostCertificate {
        let identity = try HostIdentity(hostID: id)
        if let issuer { return issuer.certify(identity.publicKeys, now: now, lifetime: 3600) }
        return prod.certify(identity.publicKeys, serial: 5, notBefore: now - 60, notAfter: now + 86_400)
    }

    // MARK: Signature and verification

    @Test func aGrantSignedByTheDomainKeyVerifiesAndRoundTrips() throws {
        let grant = try lab.federate(terms(), after: nil, now: now)
        let trust = TrustStore(anchors: [lab.trustAnchor])
        try trust.verify(grant, localDomain: "lab", now: now)
        let decoded = try FederationGrant(serialized: grant.serialized)
        #expect(decoded == grant && decoded.version == 1 && decoded.key == "lab/prod" && decoded.peerDomainKey == prod.signingKey.publicKey)
        #expect(decoded.body.networks.map(\.localNetwork) == ["default"] && decoded.body.storageDirectory == "/srv/incoming")
    }

    @Test func anAlteredGrantIsRefusedAsABadSignature() throws {
        let grant = try lab.federate(terms(allVMs: false, labels: ["web"]), after: nil, now: now)
        var body = grant.body
        body.allVms = true // widened after signing
        var wire = Hostmesh_V1_FederationGrant()
        wire.body = try body.serializedBytes()
        wire.signature = Data(grant.signature)
        let altered = try FederationGrant(serialized: try wire.serializedBytes())
        #expect(throws: IdentityError.federationGrantRefused("its signature does not verify (altered, or not signed by the key it names)")) {
            try TrustStore(anchors: [lab.trustAnchor]).verify(altered, localDomain: "lab", now: now)
        }
    }

    @Test func aGrantSignedByAnotherKeyInTheDomainsNameIsRefusedNamingTheKey() throws {
        let impostor = try DomainAuthority(name: "lab")
        let forged = try impostor.federate(terms(), after: nil, now: now)
        #expect(throws: IdentityError.federationGrantRefused("it is signed by key \(impostor.signingKey.publicKey.fingerprint), which is not the domain key of \"lab\" (nor an issuer of it)")) {
            try TrustStore(anchors: [lab.trustAnchor]).verify(forged, localDomain: "lab", now: now)
        }
    }

    @Test func aHostKeepsOnlyItsOwnDomainsGrants() throws {
        // prod's grant for a third domain, even signed by a key this host trusts, is not this host's.
        let third = try DomainAuthority(name: "edge")
        let grant = try prod.federate(FederationTerms(peer: third.trustAnchor, allVMs: true, notBefore: now, notAfter: now + 60), after: nil, now: now)
        #expect(throws: IdentityError.self) { try TrustStore(anchors: [lab.trustAnchor, prod.trustAnchor]).verify(grant, localDomain: "lab", now: now) }
    }

    @Test func anIssuerSignsGrantsOfItsOwnDomainOnly() throws {
        let identity = try HostIdentity(hostID: "issuer-1")
        let delegation = lab.delegate(to: identity.publicKeys, serial: 9, notBefore: now - 60, notAfter: now + 86_400, maxLifetime: 86_400)
        let issuer = try CertificateIssuer(certificate: delegation, identity: identity)
        let grant = try issuer.federate(terms(), after: nil, now: now)
        try TrustStore(anchors: [lab.trustAnchor]).verify(grant, localDomain: "lab", now: now)
        // The same issuer's grant is refused by a host that does not trust lab's key.
        #expect(throws: IdentityError.self) { try TrustStore(anchors: [prod.trustAnchor]).verify(grant, localDomain: "lab", now: now) }
    }

    @Test func malformedTermsAreRefusedBeforeAnythingIsSigned() throws {
        #expect(throws: IdentityError.self) { try lab.federate(terms(allVMs: false, labels: ["Bad Label"]), after: nil, now: now) }
        #expect(throws: IdentityError.self) {
            try lab.federate(terms(networks: [.init(peerNetwork: "a", localNetwork: "x"), .init(peerNetwork: "a", localNetwork: "y")]), after: nil, now: now)
        }
        #expect(throws: IdentityError.self) { try lab.federate(terms(notAfter: now - 100), after: nil, now: now) }
        let selfGrant = FederationTerms(peer: lab.trustAnchor, allVMs: true, notBefore: now, notAfter: now + 60)
        #expect(throws: IdentityError.self) { try lab.federate(selfGrant, after: nil, now: now) }
        #expect(try FederationTerms.NetworkMapping(parsing: "front=default:stretched") == .init(peerNetwork: "front", localNetwork: "default", stretched: true))
        #expect(throws: IdentityError.self) { try FederationTerms.NetworkMapping(parsing: "front") }
    }

    @Test func versionsOnlyGrowAndARevocationReplacesTheGrant() throws {
        let v1 = try lab.federate(terms(), after: nil, now: now)
        let v2 = try lab.revokeGrant(v1, reason: "audit", now: now + 1)
        #expect(v2.version == 2 && v2.isRevoked && v2.body.reason == "audit")
        var set = FederationSet()
        #expect(set.install(v2) == .installed)
        #expect(set.install(v1) == .stale(held: 2))
        #expect(throws: IdentityError.self) { try lab.revokeGrant(v2, reason: "again", now: now + 2) }
        let v3 = try lab.federate(terms(), after: v2, now: now + 3)
        #expect(v3.version == 3 && !v3.isRevoked && set.install(v3) == .installed)
    }

    // MARK: Certificates of the peer domain

    @Test func aPeerHostVerifiesOnlyForCrossDomainPurposesWhileItsGrantIsInForce() throws {
        let trust = TrustStore(anchors: [lab.trustAnchor], clockSkewSeconds: 0)
        let host = try prodHost()
        // No grant: an unknown issuer, as before federation.
        #expect(throws: IdentityError.unknownIssuer(fingerprint: prod.signingKey.publicKey.fingerprint, claimedDomain: "prod")) {
            try trust.verify(host, now: now, purpose: "federation")
        }
        let grant = try lab.federate(terms(notAfter: now + 100), after: nil, now: now)
        trust.federation.install(grant, now: now)
        #expect(try trust.verify(host, now: now, purpose: "federation") == prod.trustAnchor)
        try trust.verify(host, now: now, purpose: "migration-stream")
        for purpose in ["sync", "join", "control", "renew"] {
            #expect(throws: IdentityError.notFederated("a host of domain prod may open only cross-domain-migration and federation and migration-stream and nbd-stream channels to domain lab, not \"\(purpose)\"")) {
                try trust.verify(host, now: now, purpose: purpose)
            }
        }
        #expect(throws: IdentityError.self) { try trust.verify(host, now: now) } // no purpose: never
        #expect(throws: IdentityError.self) { try trust.verify(host, now: now, requiredDomain: "lab", purpose: "federation") }
        // Expired.
        #expect(throws: IdentityError.notFederated("the grant of lab for prod expired at \(now + 100) (now \(now + 100)); renew it with `hostmesh domain federate`")) {
            try trust.verify(host, now: now + 100, purpose: "federation")
        }
        // Revoked.
        trust.federation.install(try lab.revokeGrant(grant, reason: "incident", now: now + 1), now: now + 1)
        #expect(throws: IdentityError.notFederated("domain lab revoked its grant for prod (version 2: incident)")) {
            try trust.verify(host, now: now + 1, purpose: "federation")
        }
    }

    @Test func aPeerHostCertifiedByThePeersIssuerVerifiesThroughTheGrant() throws {
        let identity = try HostIdentity(hostID: "prod-issuer")
        let delegation = prod.delegate(to: identity.publicKeys, serial: 3, notBefore: now - 60, notAfter: now + 86_400, maxLifetime: 86_400)
        let host = try prodHost(issuer: try CertificateIssuer(certificate: delegation, identity: identity))
        let trust = TrustStore(anchors: [lab.trustAnchor], clockSkewSeconds: 0)
        #expect(throws: IdentityError.self) { try trust.verify(host, now: now, purpose: "federation") }
        trust.federation.install(try lab.federate(terms(), after: nil, now: now), now: now)
        try trust.verify(host, now: now, purpose: "federation")
        #expect(throws: IdentityError.self) { try trust.verify(host, now: now, purpose: "sync") }
    }

    @Test func aGrantForAnotherKeyOfTheSameNameLetsNoImpostorIn() throws {
        let trust = TrustStore(anchors: [lab.trustAnchor], clockSkewSeconds: 0)
        trust.federation.install(try lab.federate(terms(), after: nil, now: now), now: now)
        let impostor = try DomainAuthority(name: "prod")
        let host = impostor.certify(try HostIdentity(hostID: "p9").publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 60)
        #expect(throws: IdentityError.unknownIssuer(fingerprint: impostor.signingKey.publicKey.fingerprint, claimedDomain: "prod")) {
            try trust.verify(host, now: now, purpose: "federation")
        }
    }

    @Test func watchersAreCutOnceWhenTheGrantIsRevokedOrExpires() throws {
        let registry = FederationRegistry(skew: 0)
        let grant = try lab.federate(terms(notAfter: now + 100), after: nil, now: now)
        #expect(registry.watch(peerKey: prod.signingKey.publicKey, now: now) { _ in } == nil) // nothing granted yet
        registry.install(grant, now: now)
        let cuts = CutLog()
        let first = registry.watch(peerKey: prod.signingKey.publicKey, now: now) { cuts.add($0) }
        _ = registry.watch(peerKey: prod.signingKey.publicKey, now: now) { cuts.add($0) }
        #expect(first != nil && registry.watchedCount == 2)
        registry.unwatch(first!)
        #expect(registry.sweep(now: now + 99) == 0)
        #expect(registry.sweep(now: now + 100) == 1)
        #expect(cuts.reasons == ["the grant of lab for prod expired at \(now + 100) (now \(now + 100)); renew it with `hostmesh domain federate`"])
        // A renewed grant, then its revocation.
        let renewed = try lab.federate(terms(), after: grant, now: now + 101)
        registry.install(renewed, now: now + 101)
        _ = registry.watch(peerKey: prod.signingKey.publicKey, now: now + 101) { cuts.add($0) }
        #expect(registry.install(try lab.revokeGrant(renewed, reason: "", now: now + 102), now: now + 102).cut == 1)
        #expect(cuts.reasons.last == "domain lab revoked its grant for prod (version 3)" && registry.watchedCount == 0)
    }

    // MARK: Admission of a VM

    func check(_ vm: FederationAdmission.Candidate, grant: FederationGrant?, key: SigningPublicKey? = nil,
               direction: FederationAdmission.Direction = .incoming, at: Int64? = nil) throws(FederationAdmission.Refusal) -> [String] {
        try FederationAdmission.check(vm, grant: grant, domain: "lab", peer: "prod", peerKey: key ?? prod.signingKey.publicKey,
                                      direction: direction, now: at ?? now, skew: 0)
    }

    @Test func admissionMapsTheNetworksOfACoveredVM() throws {
        let grant = try lab.federate(terms(allVMs: false, labels: ["web", "tier=db"],
                                           networks: [.init(peerNetwork: "front", localNetwork: "default"), .init(peerNetwork: "back", localNetwork: "storage")]),
                                     after: nil, now: now)
        let vm = FederationAdmission.Candidate(name: "vm1", labels: ["tier=db"], networks: ["back", "front"])
        #expect(try check(vm, grant: grant) == ["storage", "default"])
        let outgoing = FederationAdmission.Candidate(name: "vm1", labels: ["web"], networks: ["default"], acceptNetworkChange: true)
        #expect(try check(outgoing, grant: grant, direction: .outgoing) == ["front"])
        // On the way out a network that is not stretched needs the operator's consent.
        let unconsented = FederationAdmission.Candidate(name: "vm1", labels: ["web"], networks: ["default"])
        #expect(throws: FederationAdmission.Refusal.networkChangeNotAccepted(vm: "vm1", networks: ["default"])) {
            try check(unconsented, grant: grant, direction: .outgoing)
        }
        #expect(FederationAdmission.Refusal.networkChangeNotAccepted(vm: "vm1", networks: ["default"]).description.contains("--accept-network-change"))
    }

    @Test func admissionRefusalsNameTheCauseAndTheFix() throws {
        let grant = try lab.federate(terms(allVMs: false, labels: ["web"], notAfter: now + 100), after: nil, now: now)
        let vm = FederationAdmission.Candidate(name: "vm1", labels: ["web"], networks: ["front"])
        #expect(throws: FederationAdmission.Refusal.noGrant(domain: "lab", peer: "prod")) { try check(vm, grant: nil) }
        #expect(throws: FederationAdmission.Refusal.notInForce("the grant of lab for prod expired at \(now + 100) (now \(now + 200)); renew it with `hostmesh domain federate`")) {
            try check(vm, grant: grant, at: now + 200)
        }
        let other = try DomainAuthority(name: "prod").signingKey.publicKey
        #expect(throws: FederationAdmission.Refusal.wrongDomainKey(peer: "prod", granted: prod.signingKey.publicKey.fingerprint, presented: other.fingerprint)) {
            try check(vm, grant: grant, key: other)
        }
        #expect(throws: FederationAdmission.Refusal.labelNotCovered(vm: "vm2", labels: ["db"], allowed: ["web"])) {
            try check(.init(name: "vm2", labels: ["db"], networks: ["front"]), grant: grant)
        }
        #expect(throws: FederationAdmission.Refusal.networkUnmapped(vm: "vm1", network: "back", direction: .incoming)) {
            try check(.init(name: "vm1", labels: ["web"], networks: ["front", "back"]), grant: grant)
        }
        // Local disks come in only where the grant names a directory for them.
        #expect(try check(.init(name: "vm1", labels: ["web"], networks: ["front"], localDisks: 1), grant: grant) == ["default"])
        var noDisks = terms(allVMs: false, labels: ["web"])
        noDisks.storageDirectory = nil
        #expect(throws: FederationAdmission.Refusal.noStorageDirectory(vm: "vm1", count: 1)) {
            try check(.init(name: "vm1", labels: ["web"], networks: ["front"], localDisks: 1), grant: try lab.federate(noDisks, after: nil, now: now))
        }
        // A stretched network crosses (its peers keep it, no consent asked); mixed with one that is not, refused.
        let stretched = try lab.federate(terms(networks: [.init(peerNetwork: "front", localNetwork: "default", stretched: true),
                                                          .init(peerNetwork: "back", localNetwork: "storage")]), after: nil, now: now)
        #expect(try check(vm, grant: stretched) == ["default"])
        #expect(FederationAdmission.isStretched(["front"], grant: stretched, direction: .incoming))
        #expect(!FederationAdmission.isStretched(["front", "back"], grant: stretched, direction: .incoming))
        #expect(try check(.init(name: "vm1", networks: ["default"]), grant: stretched, direction: .outgoing) == ["front"])
        #expect(throws: FederationAdmission.Refusal.mixedStretch(vm: "vm1", stretched: ["front"], notStretched: ["back"])) {
            try check(.init(name: "vm1", networks: ["front", "back"]), grant: stretched)
        }
        let revoked = try lab.revokeGrant(grant, reason: "", now: now)
        #expect(throws: FederationAdmission.Refusal.notInForce("domain lab revoked its grant for prod (version 2)")) { try check(vm, grant: revoked) }
        #expect(FederationAdmission.Refusal.labelNotCovered(vm: "vm2", labels: ["db"], allowed: ["web"]).description.contains("label the VM or widen the grant"))
    }
}

/// Reasons a registry watcher was called with.
final class CutLog: Sendable {
    private let box = NIOLockedValueBox<[String]>([])
    func add(_ reason: String) { box.withLockedValue { $0.append(reason) } }
    var reasons: [String] { box.withLockedValue { $0 } }
}
