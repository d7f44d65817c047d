public import MeshCrypto
public import MeshWire
import Foundation

/// A host certificate: a domain's signed statement that a host id owns an identity key and a
/// Noise static key, for a validity window. Protocol.md §2.2.
///
/// The raw signed bytes are kept, so verification never depends on re-encoding.
public struct HostCertificate: Sendable, Equatable {
    /// The version this software writes and understands.
    public static let currentVersion: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-cert-v1".utf8)
    static let armorLabel = "HOSTMESH CERTIFICATE"

    /// The encoded `CertificateBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 signature by the issuer over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_CertificateBody
    /// The delegation of `issuerKey` by a domain key, when a delegated issuer signed this
    /// certificate (Protocol.md §2.6); nil when the domain key signed it.
    public let issuer: IssuerCertificate?

    /// Host id the certificate names.
    public var hostID: String { body.hostID }
    /// Domain the certificate names.
    public var domain: String { body.domain }
    /// Serial number, unique per domain.
    public var serial: UInt64 { body.serial }

    /// The host's Ed25519 identity key.
    public func identityKey() throws(IdentityError) -> SigningPublicKey {
        do { return try SigningPublicKey(bytes: [UInt8](body.identityKey)) } catch { throw .certificateMalformed("identity key: \(error)") }
    }

    /// The host's X25519 Noise static key.
    public func staticKey() throws(IdentityError) -> KeyAgreementPublicKey {
        do { return try KeyAgreementPublicKey(bytes: [UInt8](body.staticKey)) } catch { throw .certificateMalformed("static key: \(error)") }
    }

    /// The issuing domain's key.
    public func issuerKey() throws(IdentityError) -> SigningPublicKey {
        do { return try SigningPublicKey(bytes: [UInt8](body.issuerKey)) } catch { throw .certificateMalformed("issuer key: \(error)") }
    }

    /// The key of the domain that vouches for this certificate: the issuer key itself, or the
    /// domain key of the delegation when an issuer signed it (Protocol.md §2.6). The handshake
    /// names it in its domain hint (§3.3).
    public func domainKey() throws(IdentityError) -> SigningPublicKey {
        if let issuer { return issuer.domainKey }
        return try issuerKey()
    }

    /// Decodes a wire `Certificate`. Structure only: call `TrustStore.verify` before trusting it.
    public init(_ wire: Hostmesh_V1_Certificate) throws(IdentityError) {
        let body: Hostmesh_V1_CertificateBody
        do { body = try Hostmesh_V1_CertificateBody(serializedBytes: wire.body) } catch {
            throw .certificateMalformed("body does not decode: \(error)")
        }
        guard body.version == Self.currentVersion else { throw .unsupportedCertificateVersion(body.version) }
        guard body.identityKey.count == 32, body.staticKey.count == 32, body.issuerKey.count == 32 else {
            throw .certificateMalformed("keys must be 32 bytes each")
        }
        guard wire.signature.count == 64 else { throw .certificateMalformed("signature must be 64 bytes") }
        self.bodyBytes = [UInt8](wire.body)
        self.signature = [UInt8](wire.signature)
        self.body = body
        self.issuer = wire.issuer.isEmpty ? nil : try IssuerCertificate(serialized: [UInt8](wire.issuer))
    }

    /// Decodes the serialized wire form.
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_Certificate
        do { wire = try Hostmesh_V1_Certificate(serializedBytes: serialized) } catch {
            throw .certificateMalformed("does not decode: \(error)")
        }
        try self.init(wire)
    }

    /// The wire form.
    public var wire: Hostmesh_V1_Certificate {
        var w = Hostmesh_V1_Certificate()
        w.body = Data(bodyBytes)
        w.signature = Data(signature)
        if let issuer { w.issuer = Data(issuer.serialized) }
        return w
    }

    /// The serialized wire form.
    public var serialized: [UInt8] {
        try! wire.serializedBytes() // encoding a message with only bytes fields cannot fail
    }

    /// Armored text, as stored in host.cert.
    public var armored: String { Armor.encode(serialized, label: Self.armorLabel) }

    /// Loads an armored certificate file.
    public static func load(_ path: String) throws(IdentityError) -> HostCertificate {
        let text = String(decoding: try SecureFile.read(path, what: "host certificate"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: armorLabel) else {
            throw .fileMalformed(path: path, reason: "no \(armorLabel) block")
        }
        return try HostCertificate(serialized: bytes)
    }

    /// Writes the armored certificate (public: mode 0644).
    public func save(_ path: String, overwrite: Bool = true) throws(IdentityError) {
        try SecureFile.write(Array(armored.utf8), to: path, mode: 0o644, overwrite: overwrite)
    }

    /// Signs a body with a domain key. Used by `DomainAuthority`.
    static func issue(_ body: Hostmesh_V1_CertificateBody, signer: SigningKeyPair, issuer: IssuerCertificate? = nil) -> HostCertificate {
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_Certificate()
        wire.body = Data(bytes)
        wire.signature = Data(signer.sign(signatureContext + bytes))
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try! HostCertificate(wire) // just built with valid lengths and version
    }
}
