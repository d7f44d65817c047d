/// The mesh's gossip keys (Protocol.md §4.12.2): one **primary** key seals every outgoing
/// datagram; every key in the ring opens incoming ones.
///
/// Rotation without a flag day, one step at a time across the whole mesh:
/// 1. `install` the new key on every member (all can now open it; all still seal with the old);
/// 2. `use` the new key as primary on every member, in any order (each member's peers already
///    open it);
/// 3. `remove` the old key on every member (nobody seals with it any more).
public struct GossipKeyring: Sendable, CustomStringConvertible {
    /// The key that seals outgoing datagrams.
    public private(set) var primary: GossipKey
    private var others: [GossipKeyID: GossipKey]

    /// A keyring sealing with `primary` and also opening with `others`.
    public init(primary: GossipKey, others: [GossipKey] = []) throws(GossipKeyringError) {
        self.primary = primary
        self.others = [:]
        for key in others {
            try install(key)
        }
    }

    /// The id of the primary key.
    public var primaryID: GossipKeyID { primary.id }

    /// Every key id in the ring: the primary first, then the others in id order.
    public var keyIDs: [GossipKeyID] {
        [primary.id] + others.keys.sorted()
    }

    /// Every key: the primary first, then the others in id order.
    public var keys: [GossipKey] {
        [primary] + others.keys.sorted().compactMap { others[$0] }
    }

    /// The key with `id`, if it is in the ring.
    public func key(_ id: GossipKeyID) -> GossipKey? {
        id == primary.id ? primary : others[id]
    }

    /// Whether the ring holds a key with `id`.
    public func contains(_ id: GossipKeyID) -> Bool {
        key(id) != nil
    }

    /// Adds `key` for opening. Installing a key that is already present is a no-op; a
    /// different key with the same id is refused.
    public mutating func install(_ key: GossipKey) throws(GossipKeyringError) {
        if let existing = self.key(key.id) {
            guard existing.hasSameSecret(as: key) else { throw .keyIDCollision(key.id) }
            return
        }
        others[key.id] = key
    }

    /// Makes the installed key `id` the primary (sealing) key; the previous primary stays in
    /// the ring for opening.
    public mutating func use(_ id: GossipKeyID) throws(GossipKeyringError) {
        guard id != primary.id else { return }
        guard let next = others.removeValue(forKey: id) else { throw .unknownKey(id) }
        others[primary.id] = primary
        primary = next
    }

    /// Removes key `id`; datagrams sealed with it are dropped from now on.
    public mutating func remove(_ id: GossipKeyID) throws(GossipKeyringError) {
        guard id != primary.id else { throw .cannotRemovePrimary(id) }
        guard others.removeValue(forKey: id) != nil else { throw .unknownKey(id) }
    }

    /// `primary 1a2b3c4d, also 5e6f7a8b`; never a secret.
    public var description: String {
        let rest = others.keys.sorted().map(\.description)
        return "primary \(primary.id)" + (rest.isEmpty ? "" : ", also " + rest.joined(separator: ", "))
    }
}
