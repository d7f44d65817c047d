public import MeshCrypto
public import MeshWire
import Foundation

/// A domain's signed list of revoked hosts and certificates (Protocol.md §2.5). Versions only
/// grow: a receiver keeps the highest version per domain that verifies, and each version holds
/// every revocation in force (so the newest alone is enough).
///
/// The raw signed bytes are kept, so verification never depends on re-encoding, and the list
/// travels (gossip, push-pull, the store, files) exactly as it was signed.
public struct RevocationList: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-revocations-v1".utf8)
    /// Longest reason accepted, in bytes of UTF-8.
    public static let maxReasonBytes = 200
    /// Most entries accepted in one list.
    public static let maxEntries = 10_000
    static let armorLabel = "HOSTMESH REVOCATION LIST"

    /// The encoded `RevocationListBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 signature by `issuerKey` over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_RevocationListBody
    /// The delegation of `issuerKey`, when an issuer (not the domain key) signed it (§2.6).
    public let issuer: IssuerCertificate?

    /// The domain whose certificates it revokes.
    public var domain: String { body.domain }
    /// The list's version (>= 1).
    public var version: UInt64 { body.version }
    /// The revocations in force.
    public var entries: [Hostmesh_V1_RevocationEntry] { body.entries }

    /// Decodes the serialized wire form and checks its structure (not its signature: see
    /// `TrustStore.verify(_:)`). Every failure is `revocationListRefused` naming what is wrong.
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_RevocationList
        do { wire = try Hostmesh_V1_RevocationList(serializedBytes: serialized) } catch {
            throw .revocationListRefused("it does not decode: \(error)")
        }
        let body: Hostmesh_V1_RevocationListBody
        do { body = try Hostmesh_V1_RevocationListBody(serializedBytes: wire.body) } catch {
            throw .revocationListRefused("its body does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else {
            throw .revocationListRefused("format \(body.format) is not supported (this hostmesh reads format 1); upgrade hostmesh")
        }
        guard body.issuerKey.count == 32, wire.signature.count == 64 else {
            throw .revocationListRefused("the issuer key must be 32 bytes and the signature 64")
        }
        guard body.version >= 1 else { throw .revocationListRefused("version 0 (versions start at 1)") }
        do { try IdentityName.validate(body.domain) } catch { throw .revocationListRefused("domain: \(error)") }
        guard body.entries.count <= Self.maxEntries else {
            throw .revocationListRefused("\(body.entries.count) entries, more than the \(Self.maxEntries) allowed")
        }
        for entry in body.entries {
            guard !entry.hostID.isEmpty || entry.serial != 0 else {
                throw .revocationListRefused("an entry names neither a host id nor a serial")
            }
            if !entry.hostID.isEmpty {
                do { try IdentityName.validate(entry.hostID) } catch { throw .revocationListRefused("entry host id: \(error)") }
            }
            guard entry.reason.utf8.count <= Self.maxReasonBytes else {
                throw .revocationListRefused("a reason is \(entry.reason.utf8.count) bytes, more than \(Self.maxReasonBytes)")
            }
        }
        self.bodyBytes = [UInt8](wire.body)
        self.signature = [UInt8](wire.signature)
        self.body = body
        do { self.issuer = wire.issuer.isEmpty ? nil : try IssuerCertificate(serialized: [UInt8](wire.issuer)) } catch {
            throw .revocationListRefused("its issuer certificate: \(error)")
        }
    }

    /// The issuer's key.
    public var issuerKey: SigningPublicKey {
        // 32 bytes were checked at decoding, and every 32-byte string is a key to compare.
        try! SigningPublicKey(bytes: [UInt8](body.issuerKey))
    }

    /// The serialized wire form, exactly as signed.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_RevocationList()
        wire.body = Data(bodyBytes)
        wire.signature = Data(signature)
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try! wire.serializedBytes() // a message of bytes fields always encodes
    }

    /// Armored text, as in `domain.revocations`.
    public var armored: String { Armor.encode(serialized, label: Self.armorLabel) }

    /// Reads an armored list file (structure checked, signature not).
    public static func load(_ path: String) throws(IdentityError) -> RevocationList {
        let text = String(decoding: try SecureFile.read(path, what: "revocation list"), as: UTF8.self)
        guard let bytes = Armor.decode(text, label: armorLabel) else {
            throw .fileMalformed(path: path, reason: "no \(armorLabel) block")
        }
        do { return try RevocationList(serialized: bytes) } catch {
            throw .fileMalformed(path: path, reason: "\(error)")
        }
    }

    /// Writes the armored list (public: mode 0644).
    public func save(_ path: String) throws(IdentityError) {
        try SecureFile.write(Array(armored.utf8), to: path, mode: 0o644, overwrite: true)
    }

    /// The entry that revokes `certificate`, if any: the same domain, and the same host id or
    /// the same serial.
    public func entry(revoking certificate: HostCertificate) -> Hostmesh_V1_RevocationEntry? {
        guard certificate.domain == domain else { return nil }
        return entries.first { entry in
            (!entry.hostID.isEmpty && entry.hostID == certificate.hostID) || (entry.serial != 0 && entry.serial == certificate.serial)
        }
    }

    /// Signs a list (used by `DomainAuthority.revoke`).
    static func issue(_ body: Hostmesh_V1_RevocationListBody, signer: SigningKeyPair, issuer: IssuerCertificate? = nil) -> RevocationList {
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_RevocationList()
        wire.body = Data(bytes)
        wire.signature = Data(signer.sign(signatureContext + bytes))
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try! RevocationList(serialized: try! wire.serializedBytes()) // just built: valid by construction
    }
}

extension Hostmesh_V1_RevocationEntry {
    /// `host NAME` or `serial N`, and the reason, for logs and the command line.
    public var summary: String {
        let what = hostID.isEmpty ? "certificate serial \(serial)" : "host \(hostID)"
        return reason.isEmpty ? what : "\(what) (\(reason))"
    }
}
