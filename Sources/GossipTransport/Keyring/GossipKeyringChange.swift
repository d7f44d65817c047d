/// One operator step on the mesh's gossip keyring (`hostmesh keys gossip install|use|remove`,
/// Protocol.md §4.17): each makes the next manifest, one version up, from the newest held.
public enum GossipKeyringChange: Sendable, Hashable, CustomStringConvertible {
    /// Add a key for opening (every member can then open it; all still seal with the primary).
    case install(GossipKeyID, commitment: [UInt8])
    /// Make an installed key the primary: every member seals with it from then on.
    case use(GossipKeyID)
    /// Take a key out of the ring; datagrams sealed with it are dropped from then on.
    case remove(GossipKeyID)

    /// Installs `key`.
    public static func install(_ key: GossipKey) -> GossipKeyringChange {
        .install(key.id, commitment: key.commitment)
    }

    /// The key the change is about.
    public var keyID: GossipKeyID {
        switch self {
        case .install(let id, _), .use(let id), .remove(let id): return id
        }
    }

    /// The manifest after this change to `current` (version + 1). Refused, naming why: installing
    /// an id already in the ring, using a key not installed or already primary, removing the
    /// primary, a key not in the ring, or the last key; more than `maxKeys` keys.
    public func applied(to current: GossipKeyringManifest, maxKeys: Int = 16) throws(GossipKeyringError) -> GossipKeyringManifest {
        var next = current
        next.version = current.version + 1
        switch self {
        case .install(let id, let commitment):
            guard !current.contains(id) else { throw .alreadyInstalled(id) }
            guard current.entries.count < maxKeys else { throw .tooManyKeys(maxKeys) }
            next.entries.append(.init(id: id, commitment: commitment))
        case .use(let id):
            guard current.contains(id) else { throw .unknownKey(id) }
            guard id != current.primary else { throw .alreadyPrimary(id) }
            next.primary = id
        case .remove(let id):
            guard id != current.primary else { throw .cannotRemovePrimary(id) }
            guard current.contains(id) else { throw .unknownKey(id) }
            next.entries.removeAll { $0.id == id }
        }
        // Primary first, then the others in id order: one canonical order for every signer.
        let primary = next.primary
        next.entries.sort { a, b in (a.id == primary) != (b.id == primary) ? a.id == primary : a.id < b.id }
        return next
    }

    /// `install 1a2b3c4d`, `use 1a2b3c4d`, `remove 1a2b3c4d`.
    public var description: String {
        switch self {
        case .install(let id, _): return "install \(id)"
        case .use(let id): return "use \(id)"
        case .remove(let id): return "remove \(id)"
        }
    }
}
