public import MeshTime

// Federation grants (Protocol.md §4.15): carried exactly like revocation lists (§4.14).
//
//   federationGrant(domain/peer, v) replaces the held grant of that key when v is higher; it is
//   then piggybacked (twice the usual transmissions) and reported (`.federationGrantLearned`).
//   Lower or equal versions are ignored.
extension MembershipInstance {
    /// The newest federation grant held for `key` (`domain/peer`), if any.
    public func federationGrant(of key: String) -> FederationGrantNotice? { federationGrants[key] }

    /// The newest federation grant of every (domain, peer domain) held, by key.
    public var federationGrantNotices: [FederationGrantNotice] {
        federationGrants.keys.sorted().compactMap { federationGrants[$0] }
    }

    /// A grant this host learned outside gossip (the operator published it, or the agent loaded
    /// it from its store at start): held and gossiped if newer. The shell MUST have verified it.
    public mutating func learnFederationGrant(_ notice: FederationGrantNotice, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        applyFederationGrant(notice)
        return finish()
    }

    mutating func applyFederationGrant(_ notice: FederationGrantNotice) {
        guard notice.version > federationGrants[notice.key]?.version ?? 0 else { return }
        federationGrants[notice.key] = notice
        output.append(.federationGrantLearned(notice))
        let update = MemberUpdate.federationGrant(notice)
        // A grant too large for any datagram travels by push-pull only.
        guard GossipCodec.piggybackCost(of: update) <= settings.maxEncodedDatagramSize - headerBound(.ping(sequence: .max, target: localID))
        else { return }
        // Twice as far as a routine update, as a revocation list: a member that misses a
        // withdrawn grant keeps letting the other domain in.
        enqueueBroadcast(update, transmitMultiplier: 2)
    }
}
