public import Membership

// Federation grants (Protocol.md §4.15), for the agent's federation keeper: the same path as
// revocation lists (MembershipService+Revocation.swift).
extension MembershipService {
    /// Hands the core a federation grant this host learned outside gossip (published by the
    /// operator, or loaded from the agent's store at start): verified like a gossiped one and,
    /// if newer than the grant held for its (domain, peer domain), held and gossiped (a
    /// `.federationGrantLearned` event follows). Returns the refusal, or nil when it was
    /// accepted (or was no newer than the grant held).
    @discardableResult
    public func learnFederationGrant(_ grant: [UInt8]) async throws(MembershipServiceError) -> String? {
        let notice: FederationGrantNotice
        do { notice = try GossipCodec.decodeFederationGrantNotice(grant) } catch { return "\(error)" }
        return try await runtime.onLoop { state throws(MembershipServiceError) -> String? in
            guard state.phase == .running, state.instance != nil else { throw state.phase == .stopped ? .stopped : .notStarted }
            if notice.version > state.instance?.federationGrant(of: notice.key)?.version ?? 0,
                let refusal = self.configuration.federationGrantVerifier.map({ $0(notice.grant) }) ?? "no trust anchors to verify it with" {
                return refusal
            }
            if let directives = state.instance?.learnFederationGrant(notice, now: self.now()) { self.execute(directives, state) }
            return nil
        }
    }

    /// The newest federation grant held per (domain, peer domain).
    public func federationGrantNotices() async -> [FederationGrantNotice] {
        // Fails only once the service stopped: then nothing is held.
        (try? await runtime.onLoop { state in state.instance?.federationGrantNotices ?? [] }) ?? []
    }
}
