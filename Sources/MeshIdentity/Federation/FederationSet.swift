public import MeshCrypto

/// The federation grants held: the newest verified version per (domain, peer domain)
/// (Protocol.md §2.9). A pure value; `FederationRegistry` shares one between every handshake of
/// a process.
public struct FederationSet: Sendable, Equatable {
    /// The newest verified grant per `FederationGrant.key`.
    public private(set) var grants: [String: FederationGrant] = [:]

    /// No grants.
    public init() {}

    /// What installing a grant did.
    public enum Outcome: Sendable, Equatable {
        /// The grant is newer than the one held for its key: it replaced it.
        case installed
        /// A grant of this version or a newer one is already held: ignored.
        case stale(held: UInt64)
    }

    /// Installs `grant` if it is newer than the grant held for its (domain, peer domain). The
    /// caller MUST have verified it (`TrustStore.verify(_:localDomain:now:)`).
    @discardableResult
    public mutating func install(_ grant: FederationGrant) -> Outcome {
        if let held = grants[grant.key], held.version >= grant.version { return .stale(held: held.version) }
        grants[grant.key] = grant
        return .installed
    }

    /// The version held for `key` (`domain/peer`), 0 for none.
    public func version(of key: String) -> UInt64 { grants[key]?.version ?? 0 }

    /// The grant held for `peer` in `domain`, in force or not.
    public func grant(of domain: String, for peer: String) -> FederationGrant? {
        grants[FederationGrant.key(domain: domain, peer: peer)]
    }

    /// The grant that names `key` as its peer domain's key: one in force at `now` if any, else
    /// any (so a refusal can say why it is not in force); nil when no grant names it.
    public func grant(forPeerKey key: SigningPublicKey, at now: Int64, skew: Int64) -> FederationGrant? {
        let named = grants.keys.sorted().compactMap { grants[$0] }.filter { $0.peerDomainKey == key }
        return named.first { $0.isInForce(at: now, skew: skew) } ?? named.first
    }

    /// The grants in force at `now`, by key.
    public func inForce(at now: Int64, skew: Int64) -> [FederationGrant] {
        grants.keys.sorted().compactMap { grants[$0] }.filter { $0.isInForce(at: now, skew: skew) }
    }
}
