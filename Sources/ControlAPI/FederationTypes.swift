import Foundation

extension ControlTypes {
    /// `federation.publish`: hands the agent a federation grant signed by its domain key or an
    /// issuer (Protocol.md §2.9, §7); the agent verifies it, keeps it, enforces it and gossips it.
    public struct PublishFederationGrant: Codable, Sendable, ControlParameters {
        /// The encoded `FederationGrant`, base64 (RFC 4648, with padding), at most 64 KiB decoded.
        public var grant: String

        /// A request publishing `grant` (the encoded grant's bytes).
        public init(grant: [UInt8]) { self.grant = Data(grant).base64EncodedString() }

        /// The decoded bytes (nil when not base64; `validate` refuses that).
        public var bytes: [UInt8]? { Data(base64Encoded: grant).map { [UInt8]($0) } }

        public func validate() throws(ControlError) {
            guard let bytes, !bytes.isEmpty else { throw .badRequest("parameter grant is not base64 of an encoded federation grant") }
            try ControlParameter.check("grant (decoded bytes)", bytes.count, in: 1...(64 << 10))
        }
    }

    /// One network mapping of a grant.
    public struct NetworkMappingInfo: Codable, Sendable, Equatable {
        /// The network's name in the peer domain.
        public var peerNetwork: String
        /// The network's name in this domain.
        public var localNetwork: String
        /// True when the segment is carried between the domains.
        public var stretched: Bool

        public init(peerNetwork: String, localNetwork: String, stretched: Bool) {
            self.peerNetwork = peerNetwork
            self.localNetwork = localNetwork
            self.stretched = stretched
        }
    }

    /// `federation` (one per peer domain) and the answer of `federation.publish`: the newest
    /// grant the agent holds for a peer domain.
    public struct FederationGrantInfo: Codable, Sendable, Equatable {
        /// The granting domain (the agent's own).
        public var domain: String
        /// The domain let in.
        public var peerDomain: String
        /// Fingerprint of the peer domain's key.
        public var peerKey: String
        /// The grant's version.
        public var version: UInt64
        /// `in force`, `revoked`, `expired` or `not yet valid`.
        public var status: String
        /// Validity, unix seconds.
        public var notBefore: Int64
        public var notAfter: Int64
        /// True: every VM; else only VMs carrying one of `labels`.
        public var allVMs: Bool
        public var labels: [String]
        public var networks: [NetworkMappingInfo]
        /// Directory for incoming disks (empty: none accepted).
        public var storageDirectory: String
        /// Fingerprint of the key that signed it.
        public var issuer: String
        /// The revocation's reason, when revoked.
        public var reason: String
        /// The encoded grant, base64: what `hostmesh domain federate|federation revoke` build on.
        public var grant: String
        /// For `federation.publish`: what the agent did.
        public var note: String?

        public init(domain: String, peerDomain: String, peerKey: String, version: UInt64, status: String, notBefore: Int64, notAfter: Int64,
                    allVMs: Bool, labels: [String], networks: [NetworkMappingInfo], storageDirectory: String, issuer: String, reason: String,
                    grant: String, note: String? = nil) {
            self.domain = domain
            self.peerDomain = peerDomain
            self.peerKey = peerKey
            self.version = version
            self.status = status
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.allVMs = allVMs
            self.labels = labels
            self.networks = networks
            self.storageDirectory = storageDirectory
            self.issuer = issuer
            self.reason = reason
            self.grant = grant
            self.note = note
        }
    }
}
