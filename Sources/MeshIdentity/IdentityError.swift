public import MeshCrypto

/// Everything that can be wrong with keys, key files and certificates, each with its fix.
public enum IdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A secret key file can be read by group or others.
    case keyFileTooOpen(path: String, mode: UInt16)
    /// A file that should exist does not.
    case fileMissing(path: String, what: String)
    /// A file exists but is not what it claims to be.
    case fileMalformed(path: String, reason: String)
    /// A file could not be written.
    case fileWriteFailed(path: String, reason: String)
    /// A file would be overwritten.
    case fileExists(path: String)
    /// Certificate bytes do not decode.
    case certificateMalformed(String)
    /// The certificate's version is newer than this software.
    case unsupportedCertificateVersion(UInt32)
    /// No trusted domain key issued this certificate.
    case unknownIssuer(fingerprint: String, claimedDomain: String)
    /// The issuer's signature does not verify.
    case badSignature(hostID: String, domain: String)
    /// The certificate names a different domain than the one its issuer key belongs to or the one required.
    case wrongDomain(expected: String, actual: String, hostID: String)
    /// Current time is past `notAfter`.
    case expired(hostID: String, notAfter: Int64, now: Int64)
    /// Current time is before `notBefore`.
    case notYetValid(hostID: String, notBefore: Int64, now: Int64)
    /// A critical extension this software does not understand.
    case unknownCriticalExtension(String)
    /// A name (host id or domain) has characters we do not allow.
    case invalidName(String)
    /// Underlying crypto failure.
    case crypto(CryptoError)
    /// The certificate is revoked by its domain's revocation list (`entry` says which and why).
    case revoked(hostID: String, serial: UInt64, domain: String, entry: String)
    /// A revocation list was refused: the reason names what is wrong with it.
    case revocationListRefused(String)
    /// A gossip keyring record was refused (Protocol.md §4.17): the reason names what is wrong.
    case gossipKeyringRefused(String)
    /// Ownership evidence (a handover statement) was refused (Protocol.md §6.12): the reason says why.
    case evidenceRefused(String)
    /// A delegated issuer was refused (its certificate, its domain, its lifetime limit): the
    /// reason names what is wrong.
    case issuerRefused(String)
    /// A key rotation record was refused: the reason names what is wrong with it.
    case rotationRefused(String)
    /// A federation grant was refused (it does not decode, or is not signed by this host's
    /// domain or one of its issuers): the reason names what is wrong (Protocol.md §2.9).
    case federationGrantRefused(String)
    /// A host of another domain was refused on a cross-domain channel: no grant in force for
    /// its domain, or a purpose cross-domain channels may not have (Protocol.md §2.9, §3.8 code 24).
    case notFederated(String)
    /// The certificate certifies a host key its host rotated away from, and the grace period
    /// after that rotation is over (Protocol.md §3.9, close code 31).
    case keyRetired(hostID: String, key: String, since: Int64)
    /// A domain key rotation record was refused: the reason names what is wrong (Protocol.md §2.10).
    case domainRotationRefused(String)
    /// The certificate (or delegation) was signed by a domain key its domain retired (Protocol.md §2.10, close code 32).
    case domainKeyRetired(domain: String, key: String)

    public var description: String {
        switch self {
        case let .keyFileTooOpen(path, mode):
            return "key file \(path) is readable by group or others (mode \(String(mode, radix: 8))); refusing to use it. Fix: chmod 600 \(path) — and treat the key as possibly copied"
        case let .fileMissing(path, what):
            return "\(what) not found at \(path)"
        case let .fileMalformed(path, reason):
            return "\(path) is not a valid hostmesh file: \(reason)"
        case let .fileWriteFailed(path, reason):
            return "cannot write \(path): \(reason)"
        case let .fileExists(path):
            return "\(path) already exists; refusing to overwrite it (move it away first if you really mean to replace it)"
        case let .certificateMalformed(reason):
            return "certificate is malformed: \(reason)"
        case let .unsupportedCertificateVersion(v):
            return "certificate version \(v) is not supported by this hostmesh (supports 1); upgrade hostmesh"
        case let .unknownIssuer(fingerprint, claimedDomain):
            return "certificate claims domain \"\(claimedDomain)\" but its issuer key \(fingerprint) is not a trusted domain key here; add the domain's domain.pub with `hostmesh keys trust` if it should be trusted"
        case let .badSignature(hostID, domain):
            return "certificate of \(hostID) (domain \(domain)) has an invalid signature: it was altered or not issued by the domain key"
        case let .wrongDomain(expected, actual, hostID):
            return "certificate of \(hostID) is for domain \"\(actual)\", expected \"\(expected)\""
        case let .expired(hostID, notAfter, now):
            return "certificate of \(hostID) expired \(now - notAfter) s ago (not after \(notAfter)); re-certify with `hostmesh domain certify`"
        case let .notYetValid(hostID, notBefore, now):
            return "certificate of \(hostID) is not valid for another \(notBefore - now) s (not before \(notBefore)); check both clocks"
        case let .unknownCriticalExtension(id):
            return "certificate carries critical extension \"\(id)\" that this hostmesh does not understand; upgrade hostmesh"
        case let .invalidName(name):
            return "invalid name \"\(name)\": use 1-63 characters a-z, 0-9, '-', '.', '_' (lower case)"
        case let .crypto(error):
            return error.description
        case let .revoked(hostID, serial, domain, entry):
            return "certificate of \(hostID) (serial \(serial)) is revoked by domain \(domain): \(entry)"
        case let .federationGrantRefused(reason):
            return "federation grant refused: \(reason)"
        case let .notFederated(reason):
            return "not federated: \(reason)"
        case let .revocationListRefused(reason):
            return "revocation list refused: \(reason)"
        case let .gossipKeyringRefused(reason):
            return "gossip keyring refused: \(reason)"
        case let .evidenceRefused(reason):
            return "ownership evidence refused: \(reason)"
        case let .issuerRefused(reason):
            return "issuer refused: \(reason)"
        case let .rotationRefused(reason):
            return "key rotation refused: \(reason)"
        case let .domainRotationRefused(reason):
            return "domain key rotation refused: \(reason)"
        case let .domainKeyRetired(domain, key):
            return "signed by domain key \(key) of \(domain), which its domain retired (hostmesh domain rotate --retire): certify the host again with the new domain key"
        case let .keyRetired(hostID, key, since):
            return "key \(key) of \(hostID) was rotated away and is refused since \(since) (its grace period is over): the host must present its new key"
        }
    }
}

/// Validation of host ids and domain names: printable in logs and safe in file names.
public enum IdentityName {
    /// Throws unless `name` is 1...63 characters of `[a-z0-9._-]`, not starting with '.' or '-'.
    public static func validate(_ name: String) throws(IdentityError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789._-")
        guard (1...63).contains(name.count), name.allSatisfy(allowed.contains),
              let first = name.first, first != ".", first != "-" else {
            throw .invalidName(name)
        }
    }
}
