public import MeshCrypto
public import MeshWire
import Foundation

/// A domain's move from its domain key to a new one, signed by both (Protocol.md §2.10): the old
/// key names its successor, the new key proves it is held. Agents learn it from each other and
/// trust both keys during the overlap; a later record of the same pair with `oldRetired` retires
/// the old key.
public struct DomainKeyRotation: Sendable, Equatable {
    /// The format this software writes and reads.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of both signed messages.
    public static let signatureContext = Array("hostmesh-domain-rotation-v1".utf8)
    /// The armor label of `domain.rotation` files.
    public static let armorLabel = "HOSTMESH DOMAIN KEY ROTATION"

    /// The encoded body, exactly as signed.
    public let bodyBytes: [UInt8]
    /// The old key's signature.
    public let oldSignature: [UInt8]
    /// The new key's signature.
    public let newSignature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_DomainKeyRotationBody

    /// The domain.
    public var domain: String { body.domain }
    /// Its version: higher replaces lower.
    public var version: UInt64 { body.version }
    /// True when it retires the old key.
    public var oldRetired: Bool { body.oldRetired }
    /// The key it replaces (32 bytes, checked at decoding).
    public var oldKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.oldKey)) }
    /// The new key (32 bytes, checked at decoding).
    public var newKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.newKey)) }

    /// Signs the move of `old`'s domain to `new`'s key.
    public init(from old: DomainAuthority, to new: DomainAuthority, version: UInt64, issuedAt: Int64, oldRetired: Bool) {
        var body = Hostmesh_V1_DomainKeyRotationBody()
        body.format = Self.currentFormat
        body.domain = old.name
        body.oldKey = Data(old.signingKey.publicKey.bytes)
        body.newKey = Data(new.signingKey.publicKey.bytes)
        body.version = version
        body.issuedAt = issuedAt
        body.oldRetired = oldRetired
        let bytes: [UInt8] = try! body.serializedBytes() // plain fields always encode
        self.bodyBytes = bytes
        self.oldSignature = old.signingKey.sign(Self.signatureContext + bytes)
        self.newSignature = new.signingKey.sign(Self.signatureContext + bytes)
        self.body = body
    }

    /// Decodes and checks the structure (Protocol.md §2.10 step 1); `DomainKeyRegistry` checks the rest.
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_DomainKeyRotation
        let body: Hostmesh_V1_DomainKeyRotationBody
        do {
            wire = try Hostmesh_V1_DomainKeyRotation(serializedBytes: serialized)
            body = try Hostmesh_V1_DomainKeyRotationBody(serializedBytes: wire.body)
        } catch {
            throw .domainRotationRefused("it does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else { throw .domainRotationRefused("format \(body.format) is not supported (this hostmesh reads 1)") }
        guard body.oldKey.count == 32, body.newKey.count == 32 else { throw .domainRotationRefused("its keys must be 32 bytes each") }
        guard wire.oldSignature.count == 64, wire.newSignature.count == 64 else { throw .domainRotationRefused("its signatures must be 64 bytes each") }
        guard body.oldKey != body.newKey else { throw .domainRotationRefused("its new key is its old key") }
        guard body.version >= 1 else { throw .domainRotationRefused("version 0 (versions start at 1)") }
        do { try IdentityName.validate(body.domain) } catch { throw .domainRotationRefused("domain: \(error)") }
        self.bodyBytes = [UInt8](wire.body)
        self.oldSignature = [UInt8](wire.oldSignature)
        self.newSignature = [UInt8](wire.newSignature)
        self.body = body
    }

    /// The serialized form.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_DomainKeyRotation()
        wire.body = Data(bodyBytes)
        wire.oldSignature = Data(oldSignature)
        wire.newSignature = Data(newSignature)
        return try! wire.serializedBytes() // bytes fields always encode
    }

    /// Both signatures verify over the body as carried (Protocol.md §2.10 step 3); throws naming
    /// the one that does not.
    public func verifySignatures() throws(IdentityError) {
        let message = Self.signatureContext + bodyBytes
        let oldSigned = oldKey.isValidSignature(oldSignature, for: message)
        let newSigned = newKey.isValidSignature(newSignature, for: message)
        guard oldSigned, newSigned else {
            let which = oldSigned ? "the new key's signature does not verify" : newSigned ? "the old key's signature does not verify" : "neither signature verifies"
            throw .domainRotationRefused("it must be signed by both the old and the new domain key: \(which)")
        }
    }

    /// The armored text of a `domain.rotation` file.
    public var armored: String { Armor.encode(serialized, label: Self.armorLabel) }
}
