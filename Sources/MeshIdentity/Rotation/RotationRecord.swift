public import MeshCrypto
public import MeshWire
import Foundation

/// A host's move from its old identity key to a new one, signed by both (Protocol.md §2.8): the
/// old key says "my successor is this key", the new key says "I hold it". An issuer renews the
/// host's certificate for the new keys only on such a record, presented over a channel the old
/// certificate authenticated.
public struct RotationRecord: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of both signed messages.
    public static let signatureContext = Array("hostmesh-rotation-v1".utf8)
    /// A record older than this (seconds) is refused as out of date.
    public static let maxAge: Int64 = 86_400

    /// The encoded `RotationRecordBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// The old key's signature.
    public let oldSignature: [UInt8]
    /// The new key's signature.
    public let newSignature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_RotationRecordBody

    /// Signs a rotation from `old` to `new` (the same host id) at `now`.
    public init(from old: HostIdentity, to new: HostIdentity, domain: String, now: Int64) {
        var body = Hostmesh_V1_RotationRecordBody()
        body.format = Self.currentFormat
        body.hostID = old.hostID
        body.domain = domain
        body.oldIdentityKey = Data(old.signingKey.publicKey.bytes)
        body.newIdentityKey = Data(new.signingKey.publicKey.bytes)
        body.newStaticKey = Data(new.staticKey.publicKey.bytes)
        body.createdAt = now
        let bytes: [UInt8] = try! body.serializedBytes() // plain fields always encode
        self.bodyBytes = bytes
        self.oldSignature = old.signingKey.sign(Self.signatureContext + bytes)
        self.newSignature = new.signingKey.sign(Self.signatureContext + bytes)
        self.body = body
    }

    /// Decodes the serialized form (structure only: `verify` checks it).
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_RotationRecord
        let body: Hostmesh_V1_RotationRecordBody
        do {
            wire = try Hostmesh_V1_RotationRecord(serializedBytes: serialized)
            body = try Hostmesh_V1_RotationRecordBody(serializedBytes: wire.body)
        } catch {
            throw .rotationRefused("the rotation record does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else {
            throw .rotationRefused("rotation record format \(body.format) is not supported (this hostmesh reads 1)")
        }
        guard body.oldIdentityKey.count == 32, body.newIdentityKey.count == 32, body.newStaticKey.count == 32 else {
            throw .rotationRefused("the rotation record's keys must be 32 bytes each")
        }
        self.bodyBytes = [UInt8](wire.body)
        self.oldSignature = [UInt8](wire.oldSignature)
        self.newSignature = [UInt8](wire.newSignature)
        self.body = body
    }

    /// The serialized form.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_RotationRecord()
        wire.body = Data(bodyBytes)
        wire.oldSignature = Data(oldSignature)
        wire.newSignature = Data(newSignature)
        return try! wire.serializedBytes() // bytes fields always encode
    }

    /// Checks the record against the certificate the host authenticated with (its old keys), at
    /// `now`, in order (Protocol.md §2.8); every refusal names what is wrong.
    public func verify(against held: HostCertificate, now: Int64, clockSkewSeconds: Int64 = 60) throws(IdentityError) {
        guard body.hostID == held.hostID, body.domain == held.domain else {
            throw .rotationRefused("the rotation record is for \(body.hostID)@\(body.domain), but the channel authenticated \(held.hostID)@\(held.domain)")
        }
        guard body.oldIdentityKey == held.body.identityKey else {
            throw .rotationRefused("the rotation record retires another key than the one \(held.hostID)'s certificate holds (replayed or out of date)")
        }
        guard body.newIdentityKey != body.oldIdentityKey else { throw .rotationRefused("the rotation record's new key is its old key") }
        let old = try! SigningPublicKey(bytes: [UInt8](body.oldIdentityKey)) // 32 bytes, checked at decoding
        let new = try! SigningPublicKey(bytes: [UInt8](body.newIdentityKey)) // 32 bytes, checked at decoding
        let message = Self.signatureContext + bodyBytes
        let oldSigned = oldSignature.count == 64 && old.isValidSignature(oldSignature, for: message)
        let newSigned = newSignature.count == 64 && new.isValidSignature(newSignature, for: message)
        guard oldSigned, newSigned else {
            let which = oldSigned ? "the new key's signature does not verify" : newSigned ? "the old key's signature does not verify" : "neither signature verifies"
            throw .rotationRefused("the rotation record must be signed by both the old and the new key: \(which)")
        }
        guard body.createdAt <= now + clockSkewSeconds else {
            throw .rotationRefused("the rotation record was made \(body.createdAt - now) s in the future; check the clocks")
        }
        guard now - body.createdAt <= Self.maxAge else {
            throw .rotationRefused("the rotation record is \(now - body.createdAt) s old (at most \(Self.maxAge)): out of date, make a new one")
        }
    }

    /// The new public keys it rotates to.
    public var newKeys: HostPublicKeys {
        HostPublicKeys(hostID: body.hostID, identityKey: try! SigningPublicKey(bytes: [UInt8](body.newIdentityKey)), // 32 bytes, checked at decoding
                       staticKey: try! KeyAgreementPublicKey(bytes: [UInt8](body.newStaticKey))) // 32 bytes, checked at decoding
    }
}
