public import MeshCrypto
import Foundation

/// The domains a host trusts, and the verification of peers' certificates against them.
///
/// Checks run cheapest first and each failure names its cause (Protocol.md §2.3).
public struct TrustStore: Sendable {
    /// Trusted domains by key, as configured (the trust directory's files, `trust(_:)`).
    public private(set) var configuredAnchors: [SigningPublicKey: DomainTrustAnchor]
    /// Trusted domains by key, in force now: the configured ones, plus the keys domain key
    /// rotations added, minus the ones they retired (Protocol.md §2.10).
    public var anchors: [SigningPublicKey: DomainTrustAnchor] { domainKeys.anchors(configured: configuredAnchors) }
    /// The domain key rotations held, shared by every copy of this store like `revocations`.
    public let domainKeys: DomainKeyRegistry
    /// Tolerated clock difference between hosts when checking validity windows, in seconds.
    public var clockSkewSeconds: Int64
    /// The revocations in force, shared by every copy of this store (a reference: a list
    /// installed once is seen by every handshake that verifies with any copy).
    public let revocations: RevocationRegistry
    /// The federation grants of this host's domain, shared by every copy of this store like
    /// `revocations`: the domains whose hosts may open cross-domain channels (Protocol.md §2.9).
    public let federation: FederationRegistry
    /// Host keys rotated away, shared by every copy of this store like `revocations`: refused
    /// once their grace period is over (Protocol.md §3.9).
    public let retiredKeys: RetiredKeyRegistry

    /// A store trusting `anchors`.
    public init(anchors: [DomainTrustAnchor], clockSkewSeconds: Int64 = 60, revocations: RevocationRegistry = RevocationRegistry(),
                federation: FederationRegistry? = nil, retiredKeys: RetiredKeyRegistry = RetiredKeyRegistry(),
                domainKeys: DomainKeyRegistry = DomainKeyRegistry()) {
        self.retiredKeys = retiredKeys
        self.domainKeys = domainKeys
        self.configuredAnchors = Dictionary(anchors.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        self.clockSkewSeconds = clockSkewSeconds
        self.revocations = revocations
        self.federation = federation ?? FederationRegistry(skew: clockSkewSeconds)
    }

    /// Adds a trusted domain.
    public mutating func trust(_ anchor: DomainTrustAnchor) {
        configuredAnchors[anchor.key] = anchor
    }

    /// Loads every `*.pub` trust anchor in `directory` (typically `<state>/trust`); none when the
    /// directory does not exist. A directory that exists but cannot be listed throws: trusting
    /// nobody would refuse every peer with a misleading "unknown issuer".
    public static func load(fromDirectory directory: String) throws(IdentityError) -> TrustStore {
        var names: [String] = []
        if FileManager.default.fileExists(atPath: directory) {
            do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
                throw .fileMalformed(path: directory, reason: "the trust directory cannot be listed (\(error.localizedDescription)): fix its permissions")
            }
        }
        var anchors: [DomainTrustAnchor] = []
        for name in names.sorted() where name.hasSuffix(".pub") {
            anchors.append(try DomainTrustAnchor.load(directory + "/" + name))
        }
        return TrustStore(anchors: anchors)
    }

    /// Verifies `certificate` at unix time `now`. With `requiredDomain`, the certificate must
    /// also be for that domain. `purpose` is the channel's (§5.2): a certificate of a federated
    /// domain (vouched for by a grant's peer key, not a trust anchor) verifies only for the
    /// cross-domain purposes and only while its grant is in force (§2.9); without a purpose it
    /// never does. Returns the trust anchor that vouches for it.
    @discardableResult
    public func verify(_ certificate: HostCertificate, now: Int64, requiredDomain: String? = nil, purpose: String? = nil) throws(IdentityError) -> DomainTrustAnchor {
        let body = certificate.body
        let issuer = try certificate.issuerKey()
        let anchor: DomainTrustAnchor
        if let domainAnchor = anchors[issuer] {
            anchor = domainAnchor
        } else if let delegation = certificate.issuer {
            anchor = try verify(delegation, signed: certificate, now: now, purpose: purpose)
        } else if let federated = try federatedAnchor(for: issuer, now: now, purpose: purpose) {
            anchor = federated
        } else if let domain = domainKeys.retiredDomain(of: issuer) {
            throw .domainKeyRetired(domain: domain, key: issuer.fingerprint)
        } else {
            throw .unknownIssuer(fingerprint: issuer.fingerprint, claimedDomain: body.domain)
        }
        guard issuer.isValidSignature(certificate.signature, for: HostCertificate.signatureContext + certificate.bodyBytes) else {
            throw .badSignature(hostID: body.hostID, domain: body.domain)
        }
        guard body.domain == anchor.name else {
            throw .wrongDomain(expected: anchor.name, actual: body.domain, hostID: body.hostID)
        }
        if let requiredDomain, body.domain != requiredDomain {
            throw .wrongDomain(expected: requiredDomain, actual: body.domain, hostID: body.hostID)
        }
        if now + clockSkewSeconds < body.notBefore {
            throw .notYetValid(hostID: body.hostID, notBefore: body.notBefore, now: now)
        }
        if now - clockSkewSeconds >= body.notAfter {
            throw .expired(hostID: body.hostID, notAfter: body.notAfter, now: now)
        }
        if let critical = body.extensions.first(where: { $0.critical }) {
            throw .unknownCriticalExtension(critical.id)
        }
        do { try IdentityName.validate(body.hostID) } catch { throw .certificateMalformed("host id: \(error)") }
        if let entry = revocations.entry(revoking: certificate) {
            throw .revoked(hostID: body.hostID, serial: body.serial, domain: body.domain, entry: entry.summary)
        }
        if let identityKey = try? certificate.identityKey(), // 32 bytes by step 1; a key that does not decode was refused there
           let retired = retiredKeys.retirement(hostID: body.hostID, key: identityKey), now >= retired.refusedFrom {
            throw .keyRetired(hostID: body.hostID, key: identityKey.fingerprint, since: retired.refusedFrom)
        }
        return anchor
    }

    /// Verifies the delegation of a certificate's issuer key (Protocol.md §2.6, §2.3 step 2): the
    /// delegation itself, then the certificate's lifetime against its maximum. Returns the
    /// domain's anchor.
    func verify(_ delegation: IssuerCertificate, signed certificate: HostCertificate, now: Int64, purpose: String? = nil) throws(IdentityError) -> DomainTrustAnchor {
        let anchor = try verify(delegation, delegating: try certificate.issuerKey(), in: certificate.domain, now: now, purpose: purpose)
        let lifetime = certificate.body.notAfter - certificate.body.notBefore
        guard lifetime <= delegation.body.maxLifetime else {
            throw .issuerRefused("issuer \(delegation.hostID) may issue certificates of at most \(delegation.body.maxLifetime) s; this one lasts \(lifetime) s")
        }
        return anchor
    }

    /// Verifies a delegation for something `key` signed in `domain`, in order: a trusted domain
    /// signed it, it delegates `key`, it is valid now, `domain` is its domain, and the issuer is
    /// not revoked (Protocol.md §2.6 steps 2-6 and 8). Returns the domain's anchor.
    func verify(_ delegation: IssuerCertificate, delegating key: SigningPublicKey, in domain: String, now: Int64, purpose: String? = nil) throws(IdentityError) -> DomainTrustAnchor {
        let body = delegation.body
        var trusted = anchors[delegation.domainKey]
        if trusted == nil { trusted = try federatedAnchor(for: delegation.domainKey, now: now, purpose: purpose) }
        if trusted == nil, let domain = domainKeys.retiredDomain(of: delegation.domainKey) {
            throw .domainKeyRetired(domain: domain, key: delegation.domainKey.fingerprint)
        }
        guard let anchor = trusted, anchor.name == delegation.domain else {
            throw .unknownIssuer(fingerprint: delegation.domainKey.fingerprint, claimedDomain: delegation.domain)
        }
        guard delegation.domainKey.isValidSignature(delegation.signature, for: IssuerCertificate.signatureContext + delegation.bodyBytes) else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) has an invalid signature (altered, or not signed by the domain key of \(delegation.domain))")
        }
        guard delegation.signingKey == key else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) delegates key \(delegation.signingKey.fingerprint), not the key that signed this (\(key.fingerprint))")
        }
        guard now + clockSkewSeconds >= body.notBefore, now - clockSkewSeconds < body.notAfter else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) is valid from \(body.notBefore) to \(body.notAfter), not now (\(now))")
        }
        guard domain == delegation.domain else {
            throw .issuerRefused("issuer \(delegation.hostID) may certify hosts of domain \"\(delegation.domain)\" only; this is for \"\(domain)\"")
        }
        if let entry = revocations.current.lists[delegation.domain]?.entries.first(where: {
            (!$0.hostID.isEmpty && $0.hostID == delegation.hostID) || ($0.serial != 0 && $0.serial == delegation.serial)
        }) {
            throw .revoked(hostID: delegation.hostID, serial: delegation.serial, domain: delegation.domain, entry: "the issuer: " + entry.summary)
        }
        return anchor
    }

    /// Verifies a revocation list at `now` (Protocol.md §2.5): signed by the trust anchor of the
    /// domain it names, or by an issuer of that domain whose delegation it carries and verifies
    /// (§2.6); an issuer's list MUST keep every entry of the list held for the domain (issuers
    /// only add revocations). Returns the domain's anchor.
    @discardableResult
    public func verify(_ list: RevocationList) throws(IdentityError) -> DomainTrustAnchor {
        try verify(list, now: Int64(Date().timeIntervalSince1970))
    }

    /// `verify(_:)` at unix time `now` (an issuer's delegation must be valid then).
    @discardableResult
    public func verify(_ list: RevocationList, now: Int64) throws(IdentityError) -> DomainTrustAnchor {
        let issuer = list.issuerKey
        let anchor: DomainTrustAnchor
        if let domainAnchor = anchors[issuer], domainAnchor.name == list.domain {
            anchor = domainAnchor
        } else if let delegation = list.issuer {
            do { anchor = try verify(delegation, delegating: issuer, in: list.domain, now: now) } catch {
                throw .revocationListRefused("its issuer is refused: \(error)")
            }
            if let held = revocations.current.lists[list.domain],
               let dropped = held.entries.first(where: { entry in !list.entries.contains { $0.hostID == entry.hostID && $0.serial == entry.serial } }) {
                throw .revocationListRefused("issuer \(delegation.hostID) may only add revocations, and this list drops \(dropped.summary) (held in version \(held.version))")
            }
        } else {
            let known = anchors.values.first { $0.name == list.domain }
            throw .revocationListRefused(known == nil
                ? "it is for domain \"\(list.domain)\", which this host does not trust"
                : "it is signed by key \(issuer.fingerprint), which is not the domain key of \"\(list.domain)\" (nor an issuer of it)")
        }
        guard issuer.isValidSignature(list.signature, for: RevocationList.signatureContext + list.bodyBytes) else {
            throw .revocationListRefused("its signature does not verify (altered, or not signed by the key it names)")
        }
        return anchor
    }

    /// The peer domain of a grant naming `key` (a key that is no trust anchor), as an anchor for
    /// this verification only (Protocol.md §2.9, §2.3 step 2): nil when no grant names it; a
    /// refusal (*not federated*) when the purpose is not a cross-domain one or the grant is not
    /// in force.
    func federatedAnchor(for key: SigningPublicKey, now: Int64, purpose: String?) throws(IdentityError) -> DomainTrustAnchor? {
        guard let grant = federation.grant(forPeerKey: key, at: now) else { return nil }
        guard let purpose, FederationGrant.crossDomainPurposes.contains(purpose) else {
            throw .notFederated("a host of domain \(grant.peerDomain) may open only \(FederationGrant.crossDomainPurposes.sorted().joined(separator: " and ")) channels to domain \(grant.domain), not \(purpose.map { "\"\($0)\"" } ?? "this one")")
        }
        if let refusal = grant.refusal(at: now, skew: clockSkewSeconds) { throw .notFederated(refusal) }
        return grant.peerAnchor
    }

    /// Verifies a federation grant at unix time `now` for a host of `localDomain` (Protocol.md
    /// §2.9): it is a grant of `localDomain` (a host keeps only its own domain's grants), signed
    /// by that domain's trust anchor or by an issuer of it whose delegation it carries and
    /// verifies (§2.6), and its signature verifies. It need not be in force: a revoked or
    /// expired grant still replaces an older version. Returns the domain's anchor.
    @discardableResult
    public func verify(_ grant: FederationGrant, localDomain: String, now: Int64) throws(IdentityError) -> DomainTrustAnchor {
        guard grant.domain == localDomain else {
            throw .federationGrantRefused("it is a grant of domain \"\(grant.domain)\"; this host is of \"\(localDomain)\" and keeps only its own domain's grants")
        }
        let issuer = grant.issuerKey
        let anchor: DomainTrustAnchor
        if let domainAnchor = anchors[issuer], domainAnchor.name == grant.domain {
            anchor = domainAnchor
        } else if let delegation = grant.issuer {
            do { anchor = try verify(delegation, delegating: issuer, in: grant.domain, now: now) } catch {
                throw .federationGrantRefused("its issuer is refused: \(error)")
            }
        } else {
            throw .federationGrantRefused("it is signed by key \(issuer.fingerprint), which is not the domain key of \"\(grant.domain)\" (nor an issuer of it)")
        }
        guard issuer.isValidSignature(grant.signature, for: FederationGrant.signatureContext + grant.bodyBytes) else {
            throw .federationGrantRefused("its signature does not verify (altered, or not signed by the key it names)")
        }
        return anchor
    }
}
