import Foundation
import MeshCrypto

/// One run of a sender, sent in every datagram header (Protocol.md §4.12.3).
///
/// `epoch` is the sender's start time in milliseconds since the Unix epoch (48 bits on the
/// wire), `salt` 40 random bits. Receivers order sessions by `(epoch, salt)`: a member that
/// restarts gets a greater session, and its new sequence numbers (starting again at 1) are
/// accepted, while datagrams of its earlier runs are refused as replays. The session also
/// selects the AEAD subkey, so two senders never share a nonce.
public struct GossipSession: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Largest epoch the header can carry (48 bits: the year 10889).
    public static let maxEpoch: UInt64 = 1 << 48 - 1
    /// Largest salt the header can carry (40 bits).
    public static let maxSalt: UInt64 = 1 << 40 - 1

    /// Start time of the sender, milliseconds since 1970-01-01T00:00:00Z (low 48 bits kept).
    public let epoch: UInt64
    /// Random bits that keep two sessions apart even if they start in the same millisecond
    /// (low 40 bits kept).
    public let salt: UInt64

    /// A session with explicit values (tests, or an agent that persists a boot counter).
    /// Only the bits the header carries are kept.
    public init(epoch: UInt64, salt: UInt64) {
        self.epoch = epoch & Self.maxEpoch
        self.salt = salt & Self.maxSalt
    }

    /// A new session starting now: wall-clock epoch and random salt.
    public static func startingNow() -> GossipSession {
        let milliseconds = (Date().timeIntervalSince1970 * 1000).rounded(.down)
        let salt = Sodium.randomBytes(5).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return GossipSession(epoch: UInt64(max(0, milliseconds)), salt: salt)
    }

    /// Sessions are ordered by epoch, then salt (the 11 header bytes as one big-endian number).
    public static func < (lhs: GossipSession, rhs: GossipSession) -> Bool {
        (lhs.epoch, lhs.salt) < (rhs.epoch, rhs.salt)
    }

    /// `epoch.salt` in hex.
    public var description: String {
        String(epoch, radix: 16) + "." + String(salt, radix: 16)
    }
}
