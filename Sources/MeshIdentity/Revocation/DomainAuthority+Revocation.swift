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
        if let base {
            guard base.domain == name, base.issuerKey == signingKey.publicKey else {
                throw .revocationListRefused("the current list is for domain \"\(base.domain)\" signed by key \(base.issuerKey.fingerprint), not by this domain key (\(name), \(signingKey.publicKey.fingerprint))")
            }
        }
        guard reason.utf8.count <= RevocationList.maxReasonBytes else {
            throw .revocationListRefused("the reason is \(reason.utf8.count) bytes; at most \(RevocationList.maxReasonBytes) fit")
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
