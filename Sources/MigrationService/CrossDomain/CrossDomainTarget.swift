public import MeshIdentity

/// The receiving side of a migration into another, federated domain (Protocol.md §6.10), as the
/// source dials it: the domain's trust anchor from this domain's grant (the handshake's target
/// domain), and the destination host the receiving domain chose.
public struct CrossDomainTarget: Sendable, Equatable {
    /// The receiving domain, with the key this domain's grant names for it.
    public var anchor: DomainTrustAnchor
    /// The destination's host id (in the receiving domain).
    public var host: String
    /// Every network of the VM is stretched between the two domains and the two hosts' switches
    /// are linked (Protocol.md §8.9): its ports move with it as inside a domain.
    public var stretched: Bool

    /// A target.
    public init(anchor: DomainTrustAnchor, host: String, stretched: Bool = false) {
        self.anchor = anchor
        self.host = host
        self.stretched = stretched
    }

    /// The destination as the journal and the ownership records name it: `host@domain`.
    public var peerName: String { PeerName.qualified(host: host, domain: anchor.name) }

    /// The anchor of `domain` from the grants `trust` holds (nil: no grant names it). Recovery
    /// dials a journaled cross-domain peer with it.
    public static func anchor(of domain: String, in trust: TrustStore) -> DomainTrustAnchor? {
        trust.federation.current.grants.values.first { $0.peerDomain == domain }.map(\.peerAnchor)
    }
}
