/// What a signed gossip keyring record says (Protocol.md §4.17), without the signature: its
/// version, the keys in force by id and commitment, and the primary. Never a secret.
///
/// Version 0 is the unmanaged keyring a host starts with (generated, or handed over at join)
/// before any record exists; every record has version 1 or more.
public struct GossipKeyringManifest: Sendable, Hashable {
    /// One key in force.
    public struct Entry: Sendable, Hashable {
        /// The key id.
        public var id: GossipKeyID
        /// `BLAKE2b-32(key = K, "hostmesh-gossip-v1 key commitment")` (`GossipKey.commitment`).
        public var commitment: [UInt8]

        /// An entry.
        public init(id: GossipKeyID, commitment: [UInt8]) {
            self.id = id
            self.commitment = commitment
        }
    }

    /// 0 for an unmanaged keyring; >= 1 for a record's.
    public var version: UInt64
    /// The keys in force, primary first, then the others in id order.
    public var entries: [Entry]
    /// The key every member seals with.
    public var primary: GossipKeyID

    /// A manifest.
    public init(version: UInt64, entries: [Entry], primary: GossipKeyID) {
        self.version = version
        self.entries = entries
        self.primary = primary
    }

    /// The manifest of `keyring` at `version` (the base a first record builds on).
    public init(of keyring: GossipKeyring, version: UInt64) {
        self.init(version: version, entries: keyring.keys.map { Entry(id: $0.id, commitment: $0.commitment) }, primary: keyring.primaryID)
    }

    /// The key ids, in entry order.
    public var keyIDs: [GossipKeyID] { entries.map(\.id) }

    /// Whether the manifest names `id`.
    public func contains(_ id: GossipKeyID) -> Bool { entries.contains { $0.id == id } }
}
