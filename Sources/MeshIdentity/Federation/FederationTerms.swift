public import MeshCrypto
public import MeshWire
import Foundation

/// What an operator grants another domain (`hostmesh domain federate`, Protocol.md §2.9): the
/// peer domain and its key, the VMs that may move, the network mapping, the directory for
/// incoming disks and the validity window. `DomainAuthority.federate` signs it.
public struct FederationTerms: Sendable, Equatable {
    /// One network of the peer domain mapped to one of this domain.
    public struct NetworkMapping: Sendable, Equatable {
        /// The network's name in the peer domain.
        public var peerNetwork: String
        /// The network's name in this domain.
        public var localNetwork: String
        /// True when the two domains' switches carry the segment between them.
        public var stretched: Bool

        public init(peerNetwork: String, localNetwork: String, stretched: Bool = false) {
            self.peerNetwork = peerNetwork
            self.localNetwork = localNetwork
            self.stretched = stretched
        }

        /// Parses `THEIRS=OURS` or `THEIRS=OURS:stretched` (the command line's `--network`).
        public init(parsing text: String) throws(IdentityError) {
            var rest = Substring(text)
            var stretched = false
            if rest.hasSuffix(":stretched") {
                stretched = true
                rest = rest.dropLast(":stretched".count)
            }
            let parts = rest.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw .federationGrantRefused("network mapping \"\(text)\": write THEIRS=OURS or THEIRS=OURS:stretched")
            }
            self.init(peerNetwork: String(parts[0]), localNetwork: String(parts[1]), stretched: stretched)
        }
    }

    /// The domain let in.
    public var peer: DomainTrustAnchor
    /// True: every VM may move. False: only VMs carrying one of `labels`.
    public var allVMs: Bool
    /// Labels a VM must carry one of when `allVMs` is false.
    public var labels: [String]
    /// Their network -> ours.
    public var networks: [NetworkMapping]
    /// Absolute directory for incoming VMs' disks; nil: no disks accepted.
    public var storageDirectory: String?
    /// Validity, unix seconds, `[notBefore, notAfter)`.
    public var notBefore: Int64
    public var notAfter: Int64

    public init(peer: DomainTrustAnchor, allVMs: Bool, labels: [String] = [], networks: [NetworkMapping] = [],
                storageDirectory: String? = nil, notBefore: Int64, notAfter: Int64) {
        self.peer = peer
        self.allVMs = allVMs
        self.labels = labels
        self.networks = networks
        self.storageDirectory = storageDirectory
        self.notBefore = notBefore
        self.notAfter = notAfter
    }

    /// The body these terms sign, for `domain` signed by `issuerKey`, at `version`.
    func body(domain: String, issuerKey: SigningPublicKey, version: UInt64, issuedAt: Int64) -> Hostmesh_V1_FederationGrantBody {
        var body = Hostmesh_V1_FederationGrantBody()
        body.format = FederationGrant.currentFormat
        body.domain = domain
        body.issuerKey = Data(issuerKey.bytes)
        body.peerDomain = peer.name
        body.peerDomainKey = Data(peer.key.bytes)
        body.version = version
        body.issuedAt = issuedAt
        body.notBefore = notBefore
        body.notAfter = notAfter
        body.allVms = allVMs
        body.vmLabels = labels
        body.networks = networks.map { mapping in
            var wire = Hostmesh_V1_NetworkMapping()
            wire.peerNetwork = mapping.peerNetwork
            wire.localNetwork = mapping.localNetwork
            wire.stretched = mapping.stretched
            return wire
        }
        body.storageDirectory = storageDirectory ?? ""
        return body
    }
}

extension FederationGrant {
    /// The body of the version after `base` that withdraws it (same terms, `revoked` set).
    static func revocationBody(of base: FederationGrant, issuerKey: SigningPublicKey, reason: String, now: Int64) throws(IdentityError) -> Hostmesh_V1_FederationGrantBody {
        guard !base.isRevoked else {
            throw .federationGrantRefused("the grant of \(base.domain) for \(base.peerDomain) is already revoked (version \(base.version))")
        }
        var body = base.body
        body.issuerKey = Data(issuerKey.bytes)
        body.version = base.version + 1
        body.issuedAt = now
        body.revoked = true
        body.reason = reason
        return body
    }

    /// The version a new grant for the same peer takes after `base` (1 for the first).
    static func nextVersion(after base: FederationGrant?, domain: String, peer: String) throws(IdentityError) -> UInt64 {
        guard let base else { return 1 }
        guard base.domain == domain, base.peerDomain == peer else {
            throw .federationGrantRefused("the current grant is of \(base.domain) for \(base.peerDomain), not of \(domain) for \(peer)")
        }
        return base.version + 1
    }
}

extension DomainAuthority {
    /// The grant of `terms` to their peer domain, the version after `base` (the newest grant
    /// this domain holds for that peer, or nil for the first). Pure: no files touched.
    public func federate(_ terms: FederationTerms, after base: FederationGrant?, now: Int64) throws(IdentityError) -> FederationGrant {
        guard terms.peer.key != signingKey.publicKey else {
            throw .federationGrantRefused("the peer key is this domain's own key: a domain does not federate with itself")
        }
        let version = try FederationGrant.nextVersion(after: base, domain: name, peer: terms.peer.name)
        return try FederationGrant.issue(terms.body(domain: name, issuerKey: signingKey.publicKey, version: version, issuedAt: now), signer: signingKey)
    }

    /// The version after `base` that withdraws it, signed with the domain key.
    public func revokeGrant(_ base: FederationGrant, reason: String, now: Int64) throws(IdentityError) -> FederationGrant {
        guard base.domain == name else { throw .federationGrantRefused("the grant is of domain \(base.domain), not \(name)") }
        return try FederationGrant.issue(FederationGrant.revocationBody(of: base, issuerKey: signingKey.publicKey, reason: reason, now: now), signer: signingKey)
    }
}

extension CertificateIssuer {
    /// `DomainAuthority.federate`, signed by this issuer with its delegation attached (§2.6).
    public func federate(_ terms: FederationTerms, after base: FederationGrant?, now: Int64) throws(IdentityError) -> FederationGrant {
        let domain = certificate.domain
        guard terms.peer.key != certificate.domainKey else {
            throw .federationGrantRefused("the peer key is this domain's own key: a domain does not federate with itself")
        }
        let version = try FederationGrant.nextVersion(after: base, domain: domain, peer: terms.peer.name)
        return try FederationGrant.issue(terms.body(domain: domain, issuerKey: identity.signingKey.publicKey, version: version, issuedAt: now),
                                         signer: identity.signingKey, issuer: certificate)
    }

    /// `DomainAuthority.revokeGrant`, signed by this issuer.
    public func revokeGrant(_ base: FederationGrant, reason: String, now: Int64) throws(IdentityError) -> FederationGrant {
        guard base.domain == certificate.domain else { throw .federationGrantRefused("the grant is of domain \(base.domain), not \(certificate.domain)") }
        return try FederationGrant.issue(FederationGrant.revocationBody(of: base, issuerKey: identity.signingKey.publicKey, reason: reason, now: now),
                                         signer: identity.signingKey, issuer: certificate)
    }
}
