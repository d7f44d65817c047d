public import Membership

// Revocation lists and revoked members (Protocol.md §4.14), for the agent's trust keeper.
extension MembershipService {
    /// Hands the core a revocation list this host learned outside gossip (published by the
    /// operator, or loaded from the agent's store at start): it is verified like a gossiped
    /// one and, if newer than the list held for its domain, held and gossiped (a
    /// `.revocationLearned` event follows). Returns the refusal, or nil when it was accepted
    /// (or was no newer than the list held).
    @discardableResult
    public func learnRevocation(_ list: [UInt8]) async throws(MembershipServiceError) -> String? {
        let notice: RevocationNotice
        do { notice = try GossipCodec.decodeRevocationNotice(list) } catch { return "\(error)" }
        return try await runtime.onLoop { state throws(MembershipServiceError) -> String? in
            guard state.phase == .running, state.instance != nil else { throw state.phase == .stopped ? .stopped : .notStarted }
            if notice.version > state.instance?.revocation(of: notice.domain)?.version ?? 0,
                let refusal = self.configuration.revocationVerifier.map({ $0(notice.list) }) ?? "no trust anchors to verify it with" {
                return refusal
            }
            if let directives = state.instance?.learnRevocation(notice, now: self.now()) { self.execute(directives, state) }
            return nil
        }
    }

    /// Bans `members` (their host or certificate is revoked): forgotten at once, their
    /// datagrams dropped (`revoked`) and everything about them ignored from now on.
    public func ban(_ members: Set<MemberID>) async throws(MembershipServiceError) {
        try await runtime.onLoop { state throws(MembershipServiceError) in
            guard state.phase == .running, let directives = state.instance?.ban(members, now: self.now()) else {
                throw state.phase == .stopped ? .stopped : .notStarted
            }
            for member in members { self.certificates.remove(member) }
            self.execute(directives, state)
        }
    }

    /// The newest revocation list held per domain, and the members banned.
    public func revocationState() async -> (lists: [RevocationNotice], banned: Set<MemberID>) {
        // Fails only once the service stopped: then nothing is held.
        (try? await runtime.onLoop { state in
            (state.instance?.revocationNotices ?? [], state.instance?.bannedMembers ?? [])
        }) ?? ([], [])
    }
}
