public import MeshCrypto
import MeshWire
import Foundation

/// This host's secret identity: its host id and Ed25519 key pair (from which the X25519 Noise
/// static key derives). Stored in `host.key` (0600); the public half in `host.pub`.
public struct HostIdentity: Sendable {
    static let secretLabel = "HOSTMESH SECRET KEY"
    static let publicLabel = "HOSTMESH HOST PUBLIC KEYS"

    /// The host id.
    public let hostID: String
    /// The Ed25519 identity key pair.
    public let signingKey: SigningKeyPair
    /// The X25519 static key pair used in handshakes.
    public let staticKey: KeyAgreementKeyPair

    /// A new random identity.
    public init(hostID: String) throws(IdentityError) {
        try self.init(hostID: hostID, signingKey: SigningKeyPair())
    }

    /// An identity from an existing key pair.
    public init(hostID: String, signingKey: SigningKeyPair) throws(IdentityError) {
        try IdentityName.validate(hostID)
        self.hostID = hostID
        self.signingKey = signingKey
        self.staticKey = signingKey.keyAgreementKeyPair()
    }

    /// The public keys, as a domain needs them to certify this host.
    public var publicKeys: HostPublicKeys {
        HostPublicKeys(hostID: hostID, identityKey: signingKey.publicKey, staticKey: staticKey.publicKey)
    }

    /// Writes `host.key` (0600) and `host.pub` into `directory`; refuses to overwrite a key.
    public func save(inDirectory directory: String) throws(IdentityError) {
        try saveKey(to: directory + "/host.key", overwrite: false)
        try publicKeys.save(directory + "/host.pub")
    }

    /// Writes the secret key file alone (0600, atomically); `overwrite` replaces an existing one
    /// (a key rotation, Protocol.md §2.8).
    public func saveKey(to path: String, overwrite: Bool) throws(IdentityError) {
        var file = Hostmesh_V1_SecretKeyFile()
        file.kind = "host"
        file.name = hostID
        file.ed25519Seed = Data(signingKey.seed.revealForStorage())
        let bytes: [UInt8] = try! file.serializedBytes() // plain fields always encode
        try SecureFile.write(Array(Armor.encode(bytes, label: Self.secretLabel).utf8), to: path, mode: 0o600, overwrite: overwrite)
    }

    /// Loads a secret host key file at `path` (e.g. `host.key.next` of an unfinished rotation).
    public static func load(keyFile path: String) throws(IdentityError) -> HostIdentity {
        let (name, seed) = try loadSecretKey(path, kind: "host")
        do { return try HostIdentity(hostID: name, signingKey: SigningKeyPair(seed: seed)) } catch let e as IdentityError { throw e } catch {
            throw .fileMalformed(path: path, reason: "\(error)")
        }
    }

    /// Loads `host.key` from `directory`, refusing a file that group or others can read.
    public static func load(fromDirectory directory: String) throws(IdentityError) -> HostIdentity {
        let (name, seed) = try loadSecretKey(directory + "/host.key", kind: "host")
        do { return try HostIdentity(hostID: name, signingKey: SigningKeyPair(seed: seed)) } catch let e as IdentityError { throw e } catch {
            throw .fileMalformed(path: directory + "/host.key", reason: "\(error)")
        }
    }

    /// Reads a secret key file of the given kind: (name, seed).
    static func loadSecretKey(_ path: String, kind: String) throws(IdentityError) -> (String, SecretBytes) {
        let text = String(decoding: try SecureFile.readSecret(path, what: "\(kind) key"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: secretLabel) else {
            throw .fileMalformed(path: path, reason: "no \(secretLabel) block")
        }
        let file: Hostmesh_V1_SecretKeyFile
        do { file = try Hostmesh_V1_SecretKeyFile(serializedBytes: bytes) } catch {
            throw .fileMalformed(path: path, reason: "body does not decode")
        }
        guard file.kind == kind else { throw .fileMalformed(path: path, reason: "this is a \(file.kind) key, expected a \(kind) key") }
        guard file.ed25519Seed.count == SigningKeyPair.seedLength else {
            throw .fileMalformed(path: path, reason: "seed must be \(SigningKeyPair.seedLength) bytes")
        }
        return (file.name, SecretBytes([UInt8](file.ed25519Seed)))
    }
}

/// A host's public keys (`host.pub`): what `hostmesh domain certify` takes as input.
public struct HostPublicKeys: Sendable, Equatable {
    /// Host id.
    public let hostID: String
    /// Ed25519 identity key.
    public let identityKey: SigningPublicKey
    /// X25519 static key.
    public let staticKey: KeyAgreementPublicKey

    /// Bundles the public keys.
    public init(hostID: String, identityKey: SigningPublicKey, staticKey: KeyAgreementPublicKey) {
        self.hostID = hostID
        self.identityKey = identityKey
        self.staticKey = staticKey
    }

    /// Writes the armored file.
    public func save(_ path: String) throws(IdentityError) {
        var m = Hostmesh_V1_HostPublicKeys()
        m.hostID = hostID
        m.identityKey = Data(identityKey.bytes)
        m.staticKey = Data(staticKey.bytes)
        let bytes: [UInt8] = try! m.serializedBytes() // plain fields always encode
        try SecureFile.write(Array(Armor.encode(bytes, label: HostIdentity.publicLabel).utf8), to: path, mode: 0o644, overwrite: true)
    }

    /// Reads an armored `host.pub`.
    public static func load(_ path: String) throws(IdentityError) -> HostPublicKeys {
        let text = String(decoding: try SecureFile.read(path, what: "host public keys"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: HostIdentity.publicLabel),
              let m = try? Hostmesh_V1_HostPublicKeys(serializedBytes: bytes) else { // refused below as fileMalformed
            throw .fileMalformed(path: path, reason: "no valid \(HostIdentity.publicLabel) block")
        }
        do {
            let keys = HostPublicKeys(hostID: m.hostID, identityKey: try SigningPublicKey(bytes: [UInt8](m.identityKey)),
                                      staticKey: try KeyAgreementPublicKey(bytes: [UInt8](m.staticKey)))
            try IdentityName.validate(keys.hostID)
            // The static key must be the one that derives from the identity key: a host.pub that
            // pairs someone's identity with another static key would let a certificate lie.
            guard try keys.identityKey.keyAgreementKey() == keys.staticKey else {
                throw IdentityError.fileMalformed(path: path, reason: "static key does not derive from the identity key")
            }
            return keys
        } catch let e as IdentityError { throw e } catch {
            throw .fileMalformed(path: path, reason: "\(error)")
        }
    }
}
