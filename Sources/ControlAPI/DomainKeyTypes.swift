import Foundation

extension ControlTypes {
    /// `domain.rotation.publish`: hands the agent a domain key rotation record signed by the old
    /// and the new domain key (Protocol.md §2.10, §7); the agent verifies it, trusts the new key
    /// (or retires the old one), keeps it and sends it to every agent it knows.
    public struct PublishDomainKeyRotation: Codable, Sendable, ControlParameters {
        /// The encoded `DomainKeyRotation`, base64 (RFC 4648, with padding), at most 4 KiB decoded.
        public var record: String

        /// A request publishing `record` (the encoded record's bytes).
        public init(record: [UInt8]) { self.record = Data(record).base64EncodedString() }

        /// The decoded bytes (nil when not base64; `validate` refuses that).
        public var bytes: [UInt8]? { Data(base64Encoded: record).map { [UInt8]($0) } }

        public func validate() throws(ControlError) {
            guard let bytes, !bytes.isEmpty else { throw .badRequest("parameter record is not base64 of an encoded domain key rotation") }
            try ControlParameter.check("record (decoded bytes)", bytes.count, in: 1...4096)
        }
    }

    /// One domain key rotation the agent holds, as `domain.rotations` shows it.
    public struct DomainKeyRotationInfo: Codable, Sendable, Equatable {
        /// The domain.
        public var domain: String
        /// The record's version.
        public var version: UInt64
        /// Fingerprints of the old and the new domain key.
        public var oldKey: String
        public var newKey: String
        /// True when the record retired the old key.
        public var oldRetired: Bool

        /// A record summary.
        public init(domain: String, version: UInt64, oldKey: String, newKey: String, oldRetired: Bool) {
            self.domain = domain
            self.version = version
            self.oldKey = oldKey
            self.newKey = newKey
            self.oldRetired = oldRetired
        }
    }
}
