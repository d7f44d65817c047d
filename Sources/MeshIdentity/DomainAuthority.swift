public import MeshCrypto
public import MeshWire
import Foundation

/// An administrative domain's signing authority (`domain.key`, 0600) and the durable serial
/// counter it issues certificates from (`domain.serial`).
public struct DomainAuthority: Sendable {
    /// Domain name.
    public let name: String
    /// The domain's Ed25519 key pair.
    public let signingKey: SigningKeyPair

    /// The public trust anchor other hosts install.
    public var trustAnchor: DomainTrustAnchor { DomainTrustAnchor(name: name, key: signingKey.publicKey) }

    /// A new domain with a random key.
    public init(name: String) throws(IdentityError) {
        try self.init(name: name, signingKey: SigningKeyPair())
    }

    /// A domain with an existing key.
    public init(name: String, signingKey: SigningKeyPair) throws(IdentityError) {
        try IdentityName.validate(name)
        self.name = name
        self.signingKey = signingKey
    }

    /// Writes `domain.key` (0600) and `domain.pub` into `directory`; refuses to overwrite a key.
    public func save(inDirectory directory: String) throws(IdentityError) {
        try saveKey(to: directory + "/domain.key", overwrite: false)
        try trustAnchor.save(directory + "/domain.pub")
    }

    /// Writes the secret key file alone (0600, atomically) to `path`.
    public func saveKey(to path: String, overwrite: Bool) throws(IdentityError) {
        var file = Hostmesh_V1_SecretKeyFile()
        file.kind = "domain"
        file.name = name
        file.ed25519Seed = Data(signingKey.seed.revealForStorage())
        let bytes: [UInt8] = try! file.serializedBytes() // plain fields always encode
        try SecureFile.write(Array(Armor.encode(bytes, label: HostIdentity.secretLabel).utf8), to: path, mode: 0o600, overwrite: overwrite)
    }

    /// Loads a domain secret key file at `path` (`domain.key`, `domain.key.old`).
    public static func load(keyFile path: String) throws(IdentityError) -> DomainAuthority {
        let (name, seed) = try HostIdentity.loadSecretKey(path, kind: "domain")
        do { return try DomainAuthority(name: name, signingKey: SigningKeyPair(seed: seed)) } catch let e as IdentityError { throw e } catch {
            throw .fileMalformed(path: path, reason: "\(error)")
        }
    }

    /// Loads `domain.key` from `directory`.
    public static func load(fromDirectory directory: String) throws(IdentityError) -> DomainAuthority {
        let (name, seed) = try HostIdentity.loadSecretKey(directory + "/domain.key", kind: "domain")
        do { return try DomainAuthority(name: name, signingKey: SigningKeyPair(seed: seed)) } catch let e as IdentityError { throw e } catch {
            throw .fileMalformed(path: directory + "/domain.key", reason: "\(error)")
        }
    }

    /// Issues a certificate with an explicit serial (pure; no files touched).
    public func certify(_ host: HostPublicKeys, serial: UInt64, notBefore: Int64, notAfter: Int64,
                        extensions: [Hostmesh_V1_Extension] = []) -> HostCertificate {
        var body = Hostmesh_V1_CertificateBody()
        body.version = HostCertificate.currentVersion
        body.hostID = host.hostID
        body.domain = name
        body.issuerKey = Data(signingKey.publicKey.bytes)
        body.identityKey = Data(host.identityKey.bytes)
        body.staticKey = Data(host.staticKey.bytes)
        body.notBefore = notBefore
        body.notAfter = notAfter
        body.serial = serial
        body.extensions = extensions
        return HostCertificate.issue(body, signer: signingKey)
    }

    /// Issues a certificate with the next serial from `directory/domain.serial`, which is
    /// advanced durably before the certificate is returned (a crash never reuses a serial).
    public func certify(_ host: HostPublicKeys, directory: String, notBefore: Int64, notAfter: Int64) throws(IdentityError) -> HostCertificate {
        certify(host, serial: try nextSerial(directory: directory), notBefore: notBefore, notAfter: notAfter)
    }

    /// Advances `directory/domain.serial` durably and returns the new serial (host and issuer
    /// certificates share the counter).
    public func nextSerial(directory: String) throws(IdentityError) -> UInt64 {
        let path = directory + "/domain.serial"
        var last: UInt64 = 0
        if FileManager.default.fileExists(atPath: path) {
            let text = String(decoding: try SecureFile.read(path, what: "serial counter"), as: UTF8.self)
            guard let v = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw .fileMalformed(path: path, reason: "expected a decimal serial number")
            }
            last = v
        }
        let serial = last + 1
        try SecureFile.write(Array("\(serial)\n".utf8), to: path, mode: 0o600, overwrite: true)
        return serial
    }
}

/// A trusted domain: its name and public key (`domain.pub`).
public struct DomainTrustAnchor: Sendable, Equatable, Hashable {
    static let armorLabel = "HOSTMESH DOMAIN PUBLIC KEY"
    /// Domain name.
    public let name: String
    /// Domain Ed25519 public key.
    public let key: SigningPublicKey

    /// A trust anchor.
    public init(name: String, key: SigningPublicKey) {
        self.name = name
        self.key = key
    }

    /// Writes the armored file.
    public func save(_ path: String) throws(IdentityError) {
        var m = Hostmesh_V1_DomainPublicKey()
        m.name = name
        m.key = Data(key.bytes)
        let bytes: [UInt8] = try! m.serializedBytes() // plain fields always encode
        try SecureFile.write(Array(Armor.encode(bytes, label: Self.armorLabel).utf8), to: path, mode: 0o644, overwrite: true)
    }

    /// Reads an armored `domain.pub`.
    public static func load(_ path: String) throws(IdentityError) -> DomainTrustAnchor {
        let text = String(decoding: try SecureFile.read(path, what: "domain public key"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: armorLabel),
              let m = try? Hostmesh_V1_DomainPublicKey(serializedBytes: bytes), // refused below as fileMalformed
              let key = try? SigningPublicKey(bytes: [UInt8](m.key)) else { // refused below as fileMalformed
            throw .fileMalformed(path: path, reason: "no valid \(armorLabel) block")
        }
        try IdentityName.validate(m.name)
        return DomainTrustAnchor(name: m.name, key: key)
    }
}
