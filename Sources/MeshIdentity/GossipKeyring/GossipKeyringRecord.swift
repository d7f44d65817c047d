public import MeshCrypto
public import MeshWire
import Foundation

/// The mesh's gossip keyring as its domain manages it (Protocol.md §4.17): a versioned record,
/// signed by the domain key or an issuer of the domain, naming the keys in force by id and
/// commitment and the primary one. It never holds a secret: the secrets travel beside it on the
/// secure channel (`TrustGossipKeyringUpdate`) and each must match its commitment.
///
/// The raw signed bytes are kept, so verification never depends on re-encoding.
public struct GossipKeyringRecord: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-gossip-keyring-v1".utf8)
    /// Most keys one record may name.
    public static let maxKeys = 16

    /// One key the record names.
    public struct Entry: Sendable, Equatable {
        /// The key id (Protocol.md §4.12.2), as on the wire.
        public let id: UInt32
        /// `BLAKE2b-32(key = K, "hostmesh-gossip-v1 key commitment")`.
        public let commitment: [UInt8]

        /// An entry.
        public init(id: UInt32, commitment: [UInt8]) {
            self.id = id
            self.commitment = commitment
        }
    }

    /// The encoded `TrustGossipKeyringBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 signature by `signerKey` over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_TrustGossipKeyringBody
    /// The delegation of `signerKey`, when an issuer (not the domain key) signed it (§2.6).
    public let issuer: IssuerCertificate?

    /// The domain whose mesh uses the keyring.
    public var domain: String { body.domain }
    /// The version (>= 1).
    public var version: UInt64 { body.version }
    /// The id of the key every member seals with.
    public var primaryKeyID: UInt32 { body.primaryKeyID }
    /// The keys in force, in the record's order.
    public var entries: [Entry] { body.keys.map { Entry(id: $0.id, commitment: [UInt8]($0.commitment)) } }

    /// Decodes the wire form and checks its structure (not who signed it: see
    /// `TrustStore.verify(_: GossipKeyringRecord, now:)`). Every failure is
    /// `gossipKeyringRefused` naming what is wrong.
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_TrustGossipKeyring
        do { wire = try Hostmesh_V1_TrustGossipKeyring(serializedBytes: serialized) } catch {
            throw .gossipKeyringRefused("it does not decode: \(error)")
        }
        let body: Hostmesh_V1_TrustGossipKeyringBody
        do { body = try Hostmesh_V1_TrustGossipKeyringBody(serializedBytes: wire.body) } catch {
            throw .gossipKeyringRefused("its body does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else {
            throw .gossipKeyringRefused("format \(body.format) is not supported (this hostmesh reads format 1); upgrade hostmesh")
        }
        guard body.signerKey.count == 32, wire.signature.count == 64 else {
            throw .gossipKeyringRefused("the signer key must be 32 bytes and the signature 64")
        }
        guard body.version >= 1 else { throw .gossipKeyringRefused("version 0 (versions start at 1)") }
        do { try IdentityName.validate(body.domain) } catch { throw .gossipKeyringRefused("domain: \(error)") }
        guard (1...Self.maxKeys).contains(body.keys.count) else {
            throw .gossipKeyringRefused("it names \(body.keys.count) keys; a keyring holds 1 to \(Self.maxKeys)")
        }
        guard Set(body.keys.map(\.id)).count == body.keys.count else {
            throw .gossipKeyringRefused("it names a key id twice")
        }
        guard body.keys.allSatisfy({ $0.commitment.count == 32 }) else {
            throw .gossipKeyringRefused("a key commitment is not 32 bytes")
        }
        guard body.keys.contains(where: { $0.id == body.primaryKeyID }) else {
            throw .gossipKeyringRefused("its primary key \(Self.hex(body.primaryKeyID)) is not one of its keys")
        }
        self.bodyBytes = [UInt8](wire.body)
        self.signature = [UInt8](wire.signature)
        self.body = body
        do { self.issuer = wire.issuer.isEmpty ? nil : try IssuerCertificate(serialized: [UInt8](wire.issuer)) } catch {
            throw .gossipKeyringRefused("its issuer certificate: \(error)")
        }
    }

    /// The signer's key.
    public var signerKey: SigningPublicKey {
        // 32 bytes were checked at decoding, and every 32-byte string is a key to compare.
        try! SigningPublicKey(bytes: [UInt8](body.signerKey))
    }

    /// The serialized wire form, exactly as signed.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_TrustGossipKeyring()
        wire.body = Data(bodyBytes)
        wire.signature = Data(signature)
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try! wire.serializedBytes() // a message of bytes fields always encodes
    }

    /// The body of the record at `version` for `domain` naming `entries` with `primary`, to be
    /// signed by the domain (`DomainAuthority.signGossipKeyring`) or an issuer
    /// (`CertificateIssuer.signGossipKeyring`).
    public static func body(domain: String, version: UInt64, issuedAt: Int64, entries: [Entry], primary: UInt32) -> Hostmesh_V1_TrustGossipKeyringBody {
        var body = Hostmesh_V1_TrustGossipKeyringBody()
        body.format = currentFormat
        body.domain = domain
        body.version = version
        body.issuedAt = issuedAt
        body.keys = entries.map { entry in
            var wire = Hostmesh_V1_TrustGossipKeyringEntry()
            wire.id = entry.id
            wire.commitment = Data(entry.commitment)
            return wire
        }
        body.primaryKeyID = primary
        return body
    }

    /// Signs `body` with `signer` (its key written into the body first).
    static func issue(_ body: Hostmesh_V1_TrustGossipKeyringBody, signer: SigningKeyPair, issuer: IssuerCertificate?) throws(IdentityError) -> GossipKeyringRecord {
        var body = body
        body.signerKey = Data(signer.publicKey.bytes)
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_TrustGossipKeyring()
        wire.body = Data(bytes)
        wire.signature = Data(signer.sign(signatureContext + bytes))
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try GossipKeyringRecord(serialized: try! wire.serializedBytes()) // structure checked: a bad body is refused here
    }

    /// 8 lower-case hex digits, as key ids are printed.
    public static func hex(_ id: UInt32) -> String {
        Hex.encode(withUnsafeBytes(of: id.bigEndian, Array.init))
    }
}

extension DomainAuthority {
    /// Signs a gossip keyring record with the domain key (Protocol.md §4.17).
    public func signGossipKeyring(_ body: Hostmesh_V1_TrustGossipKeyringBody) throws(IdentityError) -> GossipKeyringRecord {
        guard body.domain == name else {
            throw .gossipKeyringRefused("the record is for domain \"\(body.domain)\"; this is the key of \"\(name)\"")
        }
        return try GossipKeyringRecord.issue(body, signer: signingKey, issuer: nil)
    }
}

extension CertificateIssuer {
    /// Signs a gossip keyring record as this issuer host, attaching its delegation (§2.6, §4.17).
    public func signGossipKeyring(_ body: Hostmesh_V1_TrustGossipKeyringBody) throws(IdentityError) -> GossipKeyringRecord {
        guard body.domain == certificate.domain else {
            throw .gossipKeyringRefused("the record is for domain \"\(body.domain)\"; this issuer signs for \"\(certificate.domain)\" only")
        }
        return try GossipKeyringRecord.issue(body, signer: identity.signingKey, issuer: certificate)
    }
}

extension TrustStore {
    /// Verifies who signed a gossip keyring record at unix time `now` (Protocol.md §4.17): the
    /// trust anchor of its domain, or an issuer of that domain whose delegation it carries and
    /// verifies (§2.6 steps 1-6 and 8); then the signature. Returns the domain's anchor.
    @discardableResult
    public func verify(_ record: GossipKeyringRecord, now: Int64) throws(IdentityError) -> DomainTrustAnchor {
        let signer = record.signerKey
        let anchor: DomainTrustAnchor
        if let domainAnchor = anchors[signer], domainAnchor.name == record.domain {
            anchor = domainAnchor
        } else if let delegation = record.issuer {
            do { anchor = try verify(delegation, delegating: signer, in: record.domain, now: now) } catch {
                throw .gossipKeyringRefused("its issuer is refused: \(error)")
            }
        } else if let domain = domainKeys.retiredDomain(of: signer), domain == record.domain {
            throw .gossipKeyringRefused("it is signed by the retired domain key \(signer.fingerprint) of \"\(domain)\"")
        } else {
            let known = anchors.values.first { $0.name == record.domain }
            throw .gossipKeyringRefused(known == nil
                ? "it is for domain \"\(record.domain)\", which this host does not trust"
                : "it is signed by key \(signer.fingerprint), which is not the domain key of \"\(record.domain)\" (nor an issuer of it)")
        }
        guard signer.isValidSignature(record.signature, for: GossipKeyringRecord.signatureContext + record.bodyBytes) else {
            throw .gossipKeyringRefused("its signature does not verify (altered, or not signed by the key it names)")
        }
        return anchor
    }
}
