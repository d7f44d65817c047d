import Foundation

extension ControlTypes {
    /// `gossip.keyring`: the mesh's gossip keyring as the local agent holds it, and which member
    /// announces which keys (Protocol.md §4.17, §7). Never a secret.
    public struct GossipKeyringInfo: Codable, Sendable, Equatable {
        /// The agent's domain (the one a record must name).
        public var domain: String
        /// The version of the signed record held; 0 when the keyring is not managed by a record yet.
        public var version: UInt64
        /// The signed record, base64; nil at version 0.
        public var record: String?
        /// The id of the primary key (8 hex digits).
        public var primary: String
        /// The keys in force: primary first.
        public var keys: [GossipKeyInfo]
        /// Every member this agent knows (itself included), as its signed metadata announces.
        public var members: [GossipKeyringMember]

        /// The keyring info.
        public init(domain: String, version: UInt64, record: String?, primary: String, keys: [GossipKeyInfo], members: [GossipKeyringMember]) {
            self.domain = domain
            self.version = version
            self.record = record
            self.primary = primary
            self.keys = keys
            self.members = members
        }
    }

    /// One key of the keyring: its id and commitment (Protocol.md §4.17), both hex.
    public struct GossipKeyInfo: Codable, Sendable, Equatable {
        /// 8 hex digits.
        public var id: String
        /// 64 hex digits: `BLAKE2b-32(key = K, "hostmesh-gossip-v1 key commitment")`.
        public var commitment: String

        /// A key.
        public init(id: String, commitment: String) {
            self.id = id
            self.commitment = commitment
        }
    }

    /// What one member announces about its gossip keys.
    public struct GossipKeyringMember: Codable, Sendable, Equatable {
        /// Host id.
        public var host: String
        /// alive, suspect, dead or left, as this agent sees it.
        public var status: String
        /// The key ids it holds (8 hex digits each); empty when it announced none.
        public var keys: [String]
        /// The key it seals with; nil when not announced.
        public var primary: String?
        /// The record version it holds.
        public var version: UInt64

        /// A member row.
        public init(host: String, status: String, keys: [String], primary: String?, version: UInt64) {
            self.host = host
            self.status = status
            self.keys = keys
            self.primary = primary
            self.version = version
        }
    }

    /// `gossip.keyring.publish`: hands the agent a signed keyring record and the secrets of the
    /// keys it names that the agent may not hold (a newly installed one). The agent verifies,
    /// adopts, stores and sends it on to every agent of the domain (Protocol.md §4.17).
    public struct PublishGossipKeyring: Codable, Sendable, ControlParameters {
        /// The encoded `TrustGossipKeyring`, base64, at most 16 KiB decoded.
        public var record: String
        /// Secrets, 64 hex digits each, at most 16.
        public var keys: [String]

        /// A request.
        public init(record: [UInt8], keys: [String]) {
            self.record = Data(record).base64EncodedString()
            self.keys = keys
        }

        /// The decoded record (nil when not base64; `validate` refuses that).
        public var bytes: [UInt8]? { Data(base64Encoded: record).map { [UInt8]($0) } }

        public func validate() throws(ControlError) {
            guard let bytes, !bytes.isEmpty else { throw .badRequest("parameter record is not base64 of an encoded gossip keyring record") }
            try ControlParameter.check("record (decoded bytes)", bytes.count, in: 1...(16 << 10))
            try ControlParameter.check("keys (count)", keys.count, in: 0...16)
            for key in keys where key.utf8.count != 64 || !key.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }) {
                _ = key
                throw .badRequest("parameter keys holds a value that is not 64 hex digits (a gossip key is 32 bytes)")
            }
        }
    }
}
