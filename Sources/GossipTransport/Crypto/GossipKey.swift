public import MeshCrypto

/// Identifies a gossip key in datagram headers: the first 4 bytes (big-endian) of
/// `BLAKE2b-128(key = K, "hostmesh-gossip-v1 key id")` (Protocol.md §4.12.2).
///
/// Derived from the key itself, so every member computes the same id for the same key and an
/// operator never has to keep ids and keys in step. Shown as 8 lower-case hex digits.
public struct GossipKeyID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The id as it appears on the wire.
    public let rawValue: UInt32

    /// Wraps an id read from a header.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Parses 8 hex digits, as printed by `description`; nil if malformed.
    public init?(hex: String) {
        guard hex.utf8.count == 8, let bytes = Hex.decode(hex) else { return nil }
        rawValue = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// 8 lower-case hex digits, e.g. `1a2b3c4d`.
    public var description: String {
        Hex.encode(withUnsafeBytes(of: rawValue.bigEndian, Array.init))
    }

    /// Orders ids numerically, for stable listings.
    public static func < (lhs: GossipKeyID, rhs: GossipKeyID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One 32-byte symmetric key of the mesh's gossip keyring (Protocol.md §4.12.2).
///
/// Every member of a mesh holds the same keys; the key seals and opens the UDP gossip of all
/// of them. The secret lives in `SecretBytes` (wiped when the last copy is dropped).
public struct GossipKey: Sendable, CustomStringConvertible {
    /// Length of a gossip key in bytes.
    public static let length = 32
    /// Domain-separation label of the key id derivation.
    static let keyIDLabel = Array("hostmesh-gossip-v1 key id".utf8)

    /// The key's id, derived from the key.
    public let id: GossipKeyID
    /// The secret key material.
    let secret: SecretBytes

    /// A key from its secret. Throws if `secret` is not 32 bytes long.
    public init(secret: SecretBytes) throws(GossipKeyringError) {
        guard secret.count == Self.length else { throw .invalidKeyLength(secret.count) }
        self.secret = secret
        let digest = Blake2b.hash(Self.keyIDLabel, key: secret, outputLength: 16)
        id = GossipKeyID(rawValue: digest[0..<4].reduce(0) { $0 << 8 | UInt32($1) })
    }

    /// A key from raw bytes (copied into wiped-on-release storage; the caller should drop its copy).
    public init(bytes: [UInt8]) throws(GossipKeyringError) {
        try self.init(secret: SecretBytes(bytes))
    }

    /// A new random key.
    public static func generate() -> GossipKey {
        do {
            return try GossipKey(secret: SecretBytes(randomCount: length))
        } catch {
            // 32 random bytes always make a valid key; reaching this is a programmer error.
            preconditionFailure("a freshly generated gossip key was rejected: \(error)")
        }
    }

    /// The secret as bytes, for writing a keyring file. The name is loud on purpose.
    public func revealForStorage() -> [UInt8] {
        secret.revealForStorage()
    }

    /// True when both hold the same secret (constant time).
    public func hasSameSecret(as other: GossipKey) -> Bool {
        secret.constantTimeEquals(other.secret)
    }

    /// `gossip key <id>`; never the secret.
    public var description: String { "gossip key \(id)" }
}

extension GossipKey {
    /// Domain-separation label of the commitment.
    static let commitmentLabel = Array("hostmesh-gossip-v1 key commitment".utf8)

    /// `BLAKE2b-32(key = K, "hostmesh-gossip-v1 key commitment")`: names this key in a signed
    /// keyring record (Protocol.md §4.17) without revealing it; a handed secret must match it.
    public var commitment: [UInt8] {
        Blake2b.hash(Self.commitmentLabel, key: secret, outputLength: 32)
    }
}
