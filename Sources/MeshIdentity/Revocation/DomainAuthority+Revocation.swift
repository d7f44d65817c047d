import Foundation
public import MeshWire

extension DomainAuthority {
    /// What a revocation names: a host (all its certificates) or one certificate.
    public enum RevocationTarget: Sendable, Equatable, CustomStringConvertible {
        /// Every certificate of this host id.
        case host(String)
        /// The certificate with this serial.
        case serial(UInt64)

        /// A host id, or a decimal serial (all digits).
        public init(parsing text: String) throws(IdentityError) {
            if !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) {
                guard let serial = UInt64(text), serial > 0 else { throw .invalidName(text) }
                self = .serial(serial)
            } else {
                try IdentityName.validate(text)
                self = .host(text)
            }
        }

        public var description: String {
            switch self {
            case .host(let id): return "host \(id)"
            case .serial(let serial): return "certificate serial \(serial)"
            }
        }
    }

    /// The list that follows `base` (this domain's newest list, or nil for the first) with
    /// `target` revoked: version `base + 1`, every earlier entry kept. A target already revoked
    /// throws `revocationListRefused` saying so (nothing to sign). Pure: no files touched.
    public func revoke(_ target: RevocationTarget, reason: String, after base: RevocationList?, now: Int64) throws(IdentityError) -> RevocationList {
        let entries = try RevocationList.entries(after: base, in: name, adding: target, reason: reason, now: now)
        return signRevocations(entries, version: (base?.version ?? 0) + 1, issuedAt: now)
    }

    /// Signs a list with exactly `entries` at `version` (pure; for tests and vectors).
    public func signRevocations(_ entries: [Hostmesh_V1_RevocationEntry], version: UInt64, issuedAt: Int64) -> RevocationList {
        var body = Hostmesh_V1_RevocationListBody()
        body.format = RevocationList.currentFormat
        body.domain = name
        body.issuerKey = Data(signingKey.publicKey.bytes)
        body.version = version
        body.issuedAt = issuedAt
        body.entries = entries
        return RevocationList.issue(body, signer: signingKey)
    }
}

extension RevocationList {
    /// The entries of the list after `base` (the newest list of `domain`, verified by the
    /// caller) with `target` added; a target already revoked is refused, naming the entry.
    static func entries(after base: RevocationList?, in domain: String, adding target: DomainAuthority.RevocationTarget,
                        reason: String, now: Int64) throws(IdentityError) -> [Hostmesh_V1_RevocationEntry] {
        if let base, base.domain != domain {
            throw .revocationListRefused("the current list is for domain \"\(base.domain)\", not \"\(domain)\"")
        }
        guard reason.utf8.count <= maxReasonBytes else {
            throw .revocationListRefused("the reason is \(reason.utf8.count) bytes; at most \(maxReasonBytes) fit")
        }
        var entries = base?.entries ?? []
        let already = entries.first { entry in
            switch target {
            case .host(let id): return entry.hostID == id
            case .serial(let serial): return entry.serial == serial
            }
        }
        if let already {
            throw .revocationListRefused("\(target) is already revoked in version \(base?.version ?? 0) (\(already.summary))")
        }
        var entry = Hostmesh_V1_RevocationEntry()
        switch target {
        case .host(let id): entry.hostID = id
        case .serial(let serial): entry.serial = serial
        }
        entry.revokedAt = now
        entry.reason = reason
        entries.append(entry)
        return entries
    }
}

extension CertificateIssuer {
    /// The list after `base` with `target` revoked, signed by this issuer with its delegation
    /// attached (Protocol.md §2.5, §2.6): receivers accept it only if it keeps every entry of
    /// the list they hold.
    public func revoke(_ target: DomainAuthority.RevocationTarget, reason: String, after base: RevocationList?, now: Int64) throws(IdentityError) -> RevocationList {
        let entries = try RevocationList.entries(after: base, in: certificate.domain, adding: target, reason: reason, now: now)
        var body = Hostmesh_V1_RevocationListBody()
        body.format = RevocationList.currentFormat
        body.domain = certificate.domain
        body.issuerKey = Data(identity.signingKey.publicKey.bytes)
        body.version = (base?.version ?? 0) + 1
        body.issuedAt = now
        body.entries = entries
        return RevocationList.issue(body, signer: identity.signingKey, issuer: certificate)
    }
}
