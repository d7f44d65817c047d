public import MeshCrypto
import Foundation

/// The domains a host trusts, and the verification of peers' certificates against them.
///
/// Checks run cheapest first and each failure names its cause (Protocol.md §2.3).
public struct TrustStore: Sendable {
    /// Trusted domains by key.
    public private(set) var anchors: [SigningPublicKey: DomainTrustAnchor]
    /// Tolerated clock difference between hosts when checking validity windows, in seconds.
    public var clockSkewSeconds: Int64
    /// The revocations in force, shared by every copy of this store (a reference: a list
    /// installed once is seen by every handshake that verifies with any copy).
    public let revocations: RevocationRegistry

    /// A store trusting `anchors`.
    public init(anchors: [DomainTrustAnchor], clockSkewSeconds: Int64 = 60, revocations: RevocationRegistry = RevocationRegistry()) {
        self.anchors = Dictionary(anchors.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        self.clockSkewSeconds = clockSkewSeconds
        self.revocations = revocations
    }

    /// Adds a trusted domain.
    public mutating func trust(_ anchor: DomainTrustAnchor) {
        anchors[anchor.key] = anchor
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
    /// also be for that domain. Returns the trust anchor that vouches for it.
    @discardableResult
    public func verify(_ certificate: HostCertificate, now: Int64, requiredDomain: String? = nil) throws(IdentityError) -> DomainTrustAnchor {
        let body = certificate.body
        let issuer = try certificate.issuerKey()
        let anchor: DomainTrustAnchor
        if let domainAnchor = anchors[issuer] {
            anchor = domainAnchor
        } else if let delegation = certificate.issuer {
            anchor = try verify(delegation, signed: certificate, now: now)
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
        return anchor
    }

    /// Verifies the delegation of a certificate's issuer key (Protocol.md §2.6, §2.3 step 2),
    /// in order: a trusted domain signed it, it delegates the key that signed the certificate,
    /// it is valid now, the certificate is for its domain and within its maximum lifetime, and
    /// the issuer is not revoked. Returns the domain's anchor.
    func verify(_ delegation: IssuerCertificate, signed certificate: HostCertificate, now: Int64) throws(IdentityError) -> DomainTrustAnchor {
        let body = delegation.body
        guard let anchor = anchors[delegation.domainKey], anchor.name == delegation.domain else {
            throw .unknownIssuer(fingerprint: delegation.domainKey.fingerprint, claimedDomain: delegation.domain)
        }
        guard delegation.domainKey.isValidSignature(delegation.signature, for: IssuerCertificate.signatureContext + delegation.bodyBytes) else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) has an invalid signature (altered, or not signed by the domain key of \(delegation.domain))")
        }
        guard certificate.body.issuerKey == body.signingKey else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) delegates key \(delegation.signingKey.fingerprint), not the key that signed this certificate")
        }
        guard now + clockSkewSeconds >= body.notBefore, now - clockSkewSeconds < body.notAfter else {
            throw .issuerRefused("the issuer certificate of \(delegation.hostID) is valid from \(body.notBefore) to \(body.notAfter), not now (\(now))")
        }
        guard certificate.domain == delegation.domain else {
            throw .issuerRefused("issuer \(delegation.hostID) may certify hosts of domain \"\(delegation.domain)\" only; this certificate is for \"\(certificate.domain)\"")
        }
        let lifetime = certificate.body.notAfter - certificate.body.notBefore
        guard lifetime <= body.maxLifetime else {
            throw .issuerRefused("issuer \(delegation.hostID) may issue certificates of at most \(body.maxLifetime) s; this one lasts \(lifetime) s")
        }
        if let entry = revocations.current.lists[delegation.domain]?.entries.first(where: {
            (!$0.hostID.isEmpty && $0.hostID == delegation.hostID) || ($0.serial != 0 && $0.serial == delegation.serial)
        }) {
            throw .revoked(hostID: delegation.hostID, serial: delegation.serial, domain: delegation.domain, entry: "the issuer: " + entry.summary)
        }
        return anchor
    }

    /// Verifies a revocation list (Protocol.md §2.5): its issuer key must be the trust anchor
    /// of the domain it names, and its signature must verify. Returns the anchor.
    @discardableResult
    public func verify(_ list: RevocationList) throws(IdentityError) -> DomainTrustAnchor {
        let issuer = list.issuerKey
        guard let anchor = anchors[issuer], anchor.name == list.domain else {
            let known = anchors.values.first { $0.name == list.domain }
            throw .revocationListRefused(known == nil
                ? "it is for domain \"\(list.domain)\", which this host does not trust"
                : "it is signed by key \(issuer.fingerprint), which is not the domain key of \"\(list.domain)\" (nor an issuer of it)")
        }
        guard issuer.isValidSignature(list.signature, for: RevocationList.signatureContext + list.bodyBytes) else {
            throw .revocationListRefused("its signature does not verify (altered, or not signed by the domain key of \"\(list.domain)\")")
        }
        return anchor
    }
}
