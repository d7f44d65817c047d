public import MeshCrypto
public import MeshWire
import Foundation

/// A domain's signed statement that hosts of another domain may open cross-domain channels to
/// its hosts, and what may move between them (Protocol.md §2.9): the peer domain's key, the VMs
/// (all, or those carrying one of some labels), the network mapping, the directory for incoming
/// disks, a validity window. Versions only grow per (domain, peer domain): a newer version
/// replaces the older, and a version with `revoked` set withdraws the grant.
///
/// The raw signed bytes are kept, so verification never depends on re-encoding.
public struct FederationGrant: Sendable, Equatable {
    /// The format this software writes and understands.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-federation-v1".utf8)
    /// The channel purposes (Protocol.md §5.2) a host of a federated domain may open: cross-domain
    /// notes, the migration control of a move between domains, and its memory and disk streams.
    /// Never join, sync (push-pull), renew or control.
    public static let crossDomainPurposes: Set<String> = ["federation", "cross-domain-migration", "migration-stream", "nbd-stream"]
    /// The purpose of the channel that carries a migration between domains (Protocol.md §6.10).
    public static let migrationPurpose = "cross-domain-migration"
    /// Longest reason accepted, in bytes of UTF-8.
    public static let maxReasonBytes = 200
    /// Most labels, and most network mappings, in one grant.
    public static let maxEntries = 256

    /// The encoded `FederationGrantBody`, exactly as signed.
    public let bodyBytes: [UInt8]
    /// Ed25519 signature by `issuerKey` over `signatureContext || bodyBytes`.
    public let signature: [UInt8]
    /// The decoded body.
    public let body: Hostmesh_V1_FederationGrantBody
    /// The delegation of `issuerKey`, when an issuer (not the domain key) signed it (§2.6).
    public let issuer: IssuerCertificate?

    /// The granting domain.
    public var domain: String { body.domain }
    /// The domain the grant lets in.
    public var peerDomain: String { body.peerDomain }
    /// The grant's version (>= 1) for its (domain, peer domain).
    public var version: UInt64 { body.version }
    /// True when this version withdraws the grant.
    public var isRevoked: Bool { body.revoked }
    /// The key its gossip and store are keyed by: `domain/peer_domain` (names hold no `/`).
    public var key: String { Self.key(domain: domain, peer: peerDomain) }
    /// `domain/peer`.
    public static func key(domain: String, peer: String) -> String { domain + "/" + peer }

    /// The key that signed it.
    public var issuerKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.issuerKey)) } // 32 bytes, checked at decoding
    /// The peer domain's key.
    public var peerDomainKey: SigningPublicKey { try! SigningPublicKey(bytes: [UInt8](body.peerDomainKey)) } // 32 bytes, checked at decoding
    /// The peer domain as a trust anchor for cross-domain channels only.
    public var peerAnchor: DomainTrustAnchor { DomainTrustAnchor(name: peerDomain, key: peerDomainKey) }

    /// Decodes the serialized wire form and checks its structure (not its signature: see
    /// `TrustStore.verify(_:localDomain:now:)`). Every failure is `federationGrantRefused` naming
    /// what is wrong.
    public init(serialized: [UInt8]) throws(IdentityError) {
        let wire: Hostmesh_V1_FederationGrant
        let body: Hostmesh_V1_FederationGrantBody
        do {
            wire = try Hostmesh_V1_FederationGrant(serializedBytes: serialized)
            body = try Hostmesh_V1_FederationGrantBody(serializedBytes: wire.body)
        } catch {
            throw .federationGrantRefused("it does not decode: \(error)")
        }
        guard body.format == Self.currentFormat else {
            throw .federationGrantRefused("format \(body.format) is not supported (this hostmesh reads format 1); upgrade hostmesh")
        }
        guard body.issuerKey.count == 32, body.peerDomainKey.count == 32, wire.signature.count == 64 else {
            throw .federationGrantRefused("the issuer and peer domain keys must be 32 bytes and the signature 64")
        }
        guard body.version >= 1 else { throw .federationGrantRefused("version 0 (versions start at 1)") }
        do {
            try IdentityName.validate(body.domain)
            try IdentityName.validate(body.peerDomain)
        } catch { throw .federationGrantRefused("\(error)") }
        guard body.domain != body.peerDomain else {
            throw .federationGrantRefused("domain \"\(body.domain)\" cannot federate with itself")
        }
        guard body.notBefore < body.notAfter else {
            throw .federationGrantRefused("its validity is empty (not before \(body.notBefore), not after \(body.notAfter))")
        }
        guard body.vmLabels.count <= Self.maxEntries, body.networks.count <= Self.maxEntries else {
            throw .federationGrantRefused("more than \(Self.maxEntries) labels or network mappings")
        }
        guard body.reason.utf8.count <= Self.maxReasonBytes else {
            throw .federationGrantRefused("the reason is \(body.reason.utf8.count) bytes, more than \(Self.maxReasonBytes)")
        }
        for label in body.vmLabels where !FederationGrant.isValidLabel(label) {
            throw .federationGrantRefused("label \"\(label)\": use 1-63 characters a-z, 0-9, '-', '.', '_', ':', '='")
        }
        var peerNetworks = Set<String>()
        for mapping in body.networks {
            guard !mapping.peerNetwork.isEmpty, !mapping.localNetwork.isEmpty else {
                throw .federationGrantRefused("a network mapping names no network on one side")
            }
            guard peerNetworks.insert(mapping.peerNetwork).inserted else {
                throw .federationGrantRefused("network \"\(mapping.peerNetwork)\" of \(body.peerDomain) is mapped twice")
            }
        }
        if !body.storageDirectory.isEmpty, !body.storageDirectory.hasPrefix("/") {
            throw .federationGrantRefused("the storage directory \"\(body.storageDirectory)\" is not an absolute path")
        }
        self.bodyBytes = [UInt8](wire.body)
        self.signature = [UInt8](wire.signature)
        self.body = body
        do { self.issuer = wire.issuer.isEmpty ? nil : try IssuerCertificate(serialized: [UInt8](wire.issuer)) } catch {
            throw .federationGrantRefused("its issuer certificate: \(error)")
        }
    }

    /// The serialized wire form, exactly as signed.
    public var serialized: [UInt8] {
        var wire = Hostmesh_V1_FederationGrant()
        wire.body = Data(bodyBytes)
        wire.signature = Data(signature)
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try! wire.serializedBytes() // a message of bytes fields always encodes
    }

    /// True when the grant lets the peer in at unix time `now` (with `skew` seconds of tolerated
    /// clock difference): not revoked, and `now` inside `[not_before, not_after)`.
    public func isInForce(at now: Int64, skew: Int64 = 60) -> Bool {
        !isRevoked && now + skew >= body.notBefore && now - skew < body.notAfter
    }

    /// Why the grant does not let the peer in at `now`, or nil when it does.
    public func refusal(at now: Int64, skew: Int64 = 60) -> String? {
        if isRevoked {
            return "domain \(domain) revoked its grant for \(peerDomain) (version \(version)\(body.reason.isEmpty ? "" : ": \(body.reason)"))"
        }
        if now + skew < body.notBefore {
            return "the grant of \(domain) for \(peerDomain) is valid from \(body.notBefore), not yet (now \(now))"
        }
        if now - skew >= body.notAfter {
            return "the grant of \(domain) for \(peerDomain) expired at \(body.notAfter) (now \(now)); renew it with `hostmesh domain federate`"
        }
        return nil
    }

    /// Labels are names (§2.1) that may also hold `:` and `=` (`tier=web`).
    public static func isValidLabel(_ label: String) -> Bool {
        guard (1...63).contains(label.utf8.count), let first = label.utf8.first, first != UInt8(ascii: "."), first != UInt8(ascii: "-") else { return false }
        return label.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: "-") || c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: ":") || c == UInt8(ascii: "=")
        }
    }

    /// Signs a body (used by `DomainAuthority.federate` and `CertificateIssuer.federate`).
    /// The structure is checked as any received grant's is, so nothing malformed is ever signed
    /// and handed out.
    static func issue(_ body: Hostmesh_V1_FederationGrantBody, signer: SigningKeyPair, issuer: IssuerCertificate? = nil) throws(IdentityError) -> FederationGrant {
        let bytes: [UInt8] = try! body.serializedBytes() // a well-formed message always encodes
        var wire = Hostmesh_V1_FederationGrant()
        wire.body = Data(bytes)
        wire.signature = Data(signer.sign(signatureContext + bytes))
        if let issuer { wire.issuer = Data(issuer.serialized) }
        return try FederationGrant(serialized: try! wire.serializedBytes()) // bytes fields always encode
    }
}
