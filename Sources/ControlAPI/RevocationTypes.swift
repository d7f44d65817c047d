import Foundation

extension ControlTypes {
    /// `revocations.publish`: hands the agent a revocation list signed by a domain key
    /// (Protocol.md §2.5, §7); the agent verifies it, keeps it, enforces it and gossips it.
    public struct PublishRevocations: Codable, Sendable, ControlParameters {
        /// The encoded `RevocationList`, base64 (RFC 4648, with padding), at most 512 KiB decoded.
        public var list: String

        /// A request publishing `list` (the encoded list's bytes).
        public init(list: [UInt8]) { self.list = Data(list).base64EncodedString() }

        /// The decoded bytes (nil when not base64; `validate` refuses that).
        public var bytes: [UInt8]? { Data(base64Encoded: list).map { [UInt8]($0) } }

        public func validate() throws(ControlError) {
            guard let bytes, !bytes.isEmpty else { throw .badRequest("parameter list is not base64 of an encoded revocation list") }
            try ControlParameter.check("list (decoded bytes)", bytes.count, in: 1...(512 << 10))
        }
    }

    /// One revocation in force, as `revocations` shows it.
    public struct RevocationEntryInfo: Codable, Sendable, Equatable {
        /// The revoked host id (every certificate of it), or nil.
        public var host: String?
        /// The revoked certificate's serial, or nil.
        public var serial: UInt64?
        /// Unix seconds.
        public var revokedAt: Int64
        /// The operator's reason (may be empty).
        public var reason: String

        /// An entry.
        public init(host: String?, serial: UInt64?, revokedAt: Int64, reason: String) {
            self.host = host
            self.serial = serial
            self.revokedAt = revokedAt
            self.reason = reason
        }
    }

    /// `revocations` (one per domain) and the answer of `revocations.publish`: the newest list
    /// the agent holds for a domain.
    public struct RevocationListInfo: Codable, Sendable, Equatable {
        /// The domain.
        public var domain: String
        /// The list's version.
        public var version: UInt64
        /// Unix seconds, as the issuer wrote them.
        public var issuedAt: Int64
        /// Fingerprint of the key that signed it.
        public var issuer: String
        /// The revocations in force.
        public var entries: [RevocationEntryInfo]
        /// The encoded list, base64: what `hostmesh domain revoke` builds the next version on.
        public var list: String
        /// For `revocations.publish`: what the agent did (installed, or already held).
        public var note: String?

        /// A list summary.
        public init(domain: String, version: UInt64, issuedAt: Int64, issuer: String, entries: [RevocationEntryInfo], list: String, note: String? = nil) {
            self.domain = domain
            self.version = version
            self.issuedAt = issuedAt
            self.issuer = issuer
            self.entries = entries
            self.list = list
            self.note = note
        }
    }
}
