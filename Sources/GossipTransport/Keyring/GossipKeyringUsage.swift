/// Which members hold which gossip keys, as their signed metadata announces (Protocol.md §4.17),
/// and the checks `use` and `remove` make against it before anything is signed (pure).
public struct GossipKeyringUsage: Sendable {
    /// One member's announcement.
    public struct Holder: Sendable, Hashable {
        /// Host id.
        public var host: String
        /// Whether the member is alive or suspect (one that is dead or left is not waited for:
        /// it catches up when it returns).
        public var reachable: Bool
        /// The key ids it holds (empty: it announced none, e.g. older software).
        public var keyIDs: [GossipKeyID]
        /// The key it seals with (nil: not announced).
        public var primary: GossipKeyID?
        /// The keyring record version it holds.
        public var version: UInt64

        /// A holder.
        public init(host: String, reachable: Bool, keyIDs: [GossipKeyID], primary: GossipKeyID?, version: UInt64) {
            self.host = host
            self.reachable = reachable
            self.keyIDs = keyIDs
            self.primary = primary
            self.version = version
        }
    }

    /// Every member this host knows, itself included.
    public var holders: [Holder]

    /// The usage seen by one host.
    public init(holders: [Holder]) { self.holders = holders }

    /// Reachable members that do not hold `id` yet (sorted).
    public func missing(_ id: GossipKeyID) -> [String] {
        holders.filter { $0.reachable && !$0.keyIDs.contains(id) }.map(\.host).sorted()
    }

    /// Reachable members still sealing with `id` (sorted).
    public func sealing(with id: GossipKeyID) -> [String] {
        holders.filter { $0.reachable && $0.primary == id }.map(\.host).sorted()
    }

    /// Members (any status) that still hold `id` (sorted).
    public func holding(_ id: GossipKeyID) -> [String] {
        holders.filter { $0.keyIDs.contains(id) }.map(\.host).sorted()
    }

    /// Refuses a change that would make a reachable member drop gossip: `use` of a key some
    /// reachable member does not hold yet (it could not open what the others seal), `remove` of a
    /// key some reachable member still seals with (its datagrams would be dropped). The error
    /// names those members; `install` is always safe.
    public func check(_ change: GossipKeyringChange) throws(GossipKeyringError) {
        switch change {
        case .install:
            return
        case .use(let id):
            let missing = missing(id)
            guard missing.isEmpty else { throw .notYetHeld(id, hosts: missing) }
        case .remove(let id):
            let sealing = sealing(with: id)
            guard sealing.isEmpty else { throw .stillSealing(id, hosts: sealing) }
        }
    }
}
