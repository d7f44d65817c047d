public import MeshCrypto
public import MeshWire
import Foundation

/// The domain's delegation of certifying its hosts to one host's key (Protocol.md §2.6): host
/// certificates signed by that key verify through it, within its domain, its validity and its
/// maximum lifetime, for as long as it is not revoked. The domain key can then stay offline.
public struct IssuerCertificate: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-issuer-v1".utf8)
    static let armorLabel = "HOSTMESH ISSUER CERTIFICATE"

    /// The encoded `IssuerCertificateBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 signature by the domain key over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_IssuerCertificateBody

    /// The issuer host.
    public var hostID: String { body.hostID }
    /// The only domain whose hosts it may certify.
    public var domain: String { body.domain }
    /// Its serial (from the domain's counter).
    public var serial: UInt64 { body.serial }

    /// The key it delegates to (the issuer's identity key).
    public var signingKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.signingKey)) } // 32 bytes, checked at decoding
    /// The domain key that signed it.
    public var domainKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.domainKey)) } // 32 bytes, checked at decoding

    /// Decodes the serialized form and checks its structure (the chain is `TrustStore`'s).
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_IssuerCertificate
        let body: Hostmesh_V1_IssuerCertificateBody
        do {
            wire = try Hostmesh_V1_IssuerCertificate(serializedBytes: serialized)
            body = try Hostmesh_V1_IssuerCertificateBody(serializedBytes: wire.body)
        } catch {
            throw .issuerRefused("the issuer certificate does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else {
            throw .issuerRefused("issuer certificate format \(body.format) is not supported (this hostmesh reads 1)")
        }
        guard body.domainKey.count == 32, body.signingKey.count == 32, wire.signature.count == 64 else {
            throw .issuerRefused("issuer certificate keys must be 32 bytes and its signature 64")
        }
        guard body.maxLifetime > 0 else { throw .issuerRefused("issuer certificate allows no certificate lifetime (max_lifetime 0)") }
        do {
            try IdentityName.validate(body.hostID)
            try IdentityName.validate(body.domain)
        } catch { throw .issuerRefused("issuer certificate: \(error)") }
        self.bodyBytes = [UInt8](wire.body)
        self.signature = [UInt8](wire.signature)
        self.body = body
    }

    /// The serialized form, exactly as signed.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_IssuerCertificate()
        wire.body = Data(bodyBytes)
        wire.signature = Data(signature)
        return try! wire.serializedBytes() // two bytes fields always encode
    }

    /// Reads an armored `issuer.cert`.
    public static func load(_ path: String) throws(IdentityError) -> IssuerCertificate {
        let text = String(decoding: try SecureFile.read(path, what: "issuer certificate"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: armorLabel) else { throw .fileMalformed(path: path, reason: "no \(armorLabel) block") }
        do { return try IssuerCertificate(serialized: bytes) } catch { throw .fileMalformed(path: path, reason: "\(error)") }
    }

    /// Writes the armored certificate (public: mode 0644).
    public func save(_ path: String) throws(IdentityError) {
        try SecureFile.write(Array(Armor.encode(serialized, label: Self.armorLabel).utf8), to: path, mode: 0o644, overwrite: true)
    }

    static func issue(_ body: Hostmesh_V1_IssuerCertificateBody, signer: SigningKeyPair) -> IssuerCertificate {
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_IssuerCertificate()
        wire.body = Data(bytes)
        wire.signature = Data(signer.sign(signatureContext + bytes))
        return try! IssuerCertificate(serialized: try! wire.serializedBytes()) // just built: valid by construction
    }
}

extension DomainAuthority {
    /// Delegates certifying this domain's hosts to `host`'s identity key (pure; no files).
    public func delegate(to host: HostPublicKeys, serial: UInt64, notBefore: Int64, notAfter: Int64, maxLifetime: Int64) -> IssuerCertificate {
        var body = Hostmesh_V1_IssuerCertificateBody()
        body.format = IssuerCertificate.currentFormat
        body.hostID = host.hostID
        body.domain = name
        body.domainKey = Data(signingKey.publicKey.bytes)
        body.signingKey = Data(host.identityKey.bytes)
        body.notBefore = notBefore
        body.notAfter = notAfter
        body.serial = serial
        body.maxLifetime = maxLifetime
        return IssuerCertificate.issue(body, signer: signingKey)
    }
}

/// A host that holds an issuer certificate and its own identity: it certifies hosts of its
/// domain (Protocol.md §2.6-2.7).
public struct CertificateIssuer: Sendable {
    /// The delegation.
    public let certificate: IssuerCertificate
    /// The issuer host's identity, whose key the delegation names.
    public let identity: HostIdentity

    /// An issuer; refuses a delegation made for another key or host.
    public init(certificate: IssuerCertificate, identity: HostIdentity) throws(IdentityError) {
        guard certificate.signingKey == identity.signingKey.publicKey, certificate.hostID == identity.hostID else {
            throw .issuerRefused("the issuer certificate delegates to \(certificate.hostID) key \(certificate.signingKey.fingerprint), not to this host (\(identity.hostID), key \(identity.signingKey.publicKey.fingerprint))")
        }
        self.certificate = certificate
        self.identity = identity
    }

    /// Certifies `host` for `lifetime` seconds (clipped to the delegation's maximum lifetime and
    /// its own end) from `now - backdate` (clock skew; by default a quarter
    /// of the lifetime, at most 60 s). The serial is random with the top bit set: issuers cannot
    /// share the domain's counter, and the top bit keeps their serials apart from the counter's.
    public func certify(_ host: HostPublicKeys, now: Int64, lifetime: Int64, backdate: Int64? = nil) -> HostCertificate {
        let backdate = backdate ?? min(60, lifetime / 4)
        let notAfter = min(now - backdate + min(lifetime, certificate.body.maxLifetime), certificate.body.notAfter)
        var body = Hostmesh_V1_CertificateBody()
        body.version = HostCertificate.currentVersion
        body.hostID = host.hostID
        body.domain = certificate.domain
        body.issuerKey = Data(identity.signingKey.publicKey.bytes)
        body.identityKey = Data(host.identityKey.bytes)
        body.staticKey = Data(host.staticKey.bytes)
        body.notBefore = now - backdate
        body.notAfter = notAfter
        body.serial = UInt64.random(in: 1...(UInt64.max >> 1)) | (1 << 63)
        return HostCertificate.issue(body, signer: identity.signingKey, issuer: certificate)
    }
}
