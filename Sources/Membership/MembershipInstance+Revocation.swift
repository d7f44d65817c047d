public import MeshTime

// Revocation lists and revoked members (Protocol.md §4.14).
//
//   revocation(domain, v) replaces the held list of `domain` when v is higher; it is then
//   piggybacked (twice the usual transmissions, like a refutation) and reported
//   (`.revocationLearned`). Lower or equal versions are ignored.
//   ban(ids): the members are forgotten at once and never learned again: their datagrams,
//   updates about them and their push-pull records are ignored.
extension MembershipInstance {
    /// The newest revocation list held for `domain`, if any.
    public func revocation(of domain: String) -> RevocationNotice? { revocations[domain] }

    /// The newest revocation list of every domain held, by domain name.
    public var revocationNotices: [RevocationNotice] {
        revocations.keys.sorted().compactMap { revocations[$0] }
    }

    /// True when `id` has been banned (`ban(_:now:)`).
    public func isBanned(_ id: MemberID) -> Bool { banned.contains(id) }

    /// The members banned so far.
    public var bannedMembers: Set<MemberID> { banned }

    /// A revocation list this host learned outside gossip (the operator published it, or the
    /// agent loaded it from its store at start): held and gossiped if newer. The shell MUST
    /// have verified it.
    public mutating func learnRevocation(_ notice: RevocationNotice, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        applyRevocation(notice)
        return finish()
    }

    /// Bans `members` (their host or certificate is revoked): each is forgotten at once
    /// (`.memberForgotten`) and everything about it is ignored from now on. This member's own
    /// id is never banned.
    public mutating func ban(_ members: Set<MemberID>, now: MeshInstant) -> [MembershipDirective] {
        begin(now)
        for id in members.sorted() where id != localID && !banned.contains(id) {
            banned.insert(id)
            suspicions[id] = nil
            unverifiedChannels[id] = nil
            if let state = table.removeValue(forKey: id) {
                if state.status.isLive { liveCount -= 1 }
                logger.debug("member banned", metadata: ["mesh.peer": "\(id)"])
                output.append(.memberForgotten(id))
            }
        }
        return finish()
    }

    mutating func applyRevocation(_ notice: RevocationNotice) {
        guard notice.version > revocations[notice.domain]?.version ?? 0 else { return }
        revocations[notice.domain] = notice
        output.append(.revocationLearned(notice))
        let update = MemberUpdate.revocation(notice)
        // A list too large for any datagram travels by push-pull only (Protocol.md §4.14).
        guard GossipCodec.piggybackCost(of: update) <= settings.maxEncodedDatagramSize - headerBound(.ping(sequence: .max, target: localID))
        else { return }
        // A revocation travels twice as far as a routine update: a member that misses it keeps
        // talking to a host the domain threw out.
        enqueueBroadcast(update, transmitMultiplier: 2)
    }
}
