/// Why bytes could not be decoded as a gossip message. Every case says what was wrong and
/// what usually causes it; the shell counts and rate-limits these and drops the datagram.
public enum GossipCodecError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The bytes are not a protobuf message of the expected type.
    case malformed(message: String, detail: String)
    /// The sender speaks a version of the gossip format this member does not know.
    case unsupportedVersion(message: String, version: UInt32)
    /// A required field is absent or empty.
    case missingField(message: String, field: String)
    /// A field is present but its value is out of range.
    case invalidField(message: String, field: String, reason: String)
    /// The input is larger than any valid message of this kind.
    case tooLarge(message: String, size: Int, limit: Int)

    /// A sentence a person can act on.
    public var description: String {
        switch self {
        case .malformed(let message, let detail):
            return "\(message) is not valid protobuf (\(detail)); the sender is not a hostmesh peer "
                + "of this version, or the data was corrupted or decrypted with the wrong key"
        case .unsupportedVersion(let message, let version):
            return "\(message) has format version \(version), this member speaks version "
                + "\(GossipCodec.formatVersion); upgrade the older member"
        case .missingField(let message, let field):
            return "\(message) lacks required field '\(field)'; the sender is buggy or not a hostmesh peer"
        case .invalidField(let message, let field, let reason):
            return "\(message) field '\(field)' is invalid: \(reason)"
        case .tooLarge(let message, let size, let limit):
            return "\(message) is \(size) bytes, more than the \(limit)-byte limit; drop it"
        }
    }
}
