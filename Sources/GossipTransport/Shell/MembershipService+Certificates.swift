import Membership

// Member certificates in push-pull states (signed membership, Protocol.md §4.16): every state
// sent carries the certificates held; every state received has its new certificates checked
// and cached before the core merges it, so the claims in it can be verified.
extension MembershipService {
    /// Holds this host's own certificate (claims relayed back to it are verified like others').
    func holdOwnCertificate(_ state: MembershipShellState) {
        guard let signed = configuration.signedClaims else { return }
        let own = signed.ownCertificate()
        guard !certificates.contains(own, of: configuration.memberID) else { return }
        hold(own, from: "this host", state)
    }

    /// `outgoing` with the certificates held (this host's current one included).
    func withCertificates(_ outgoing: PushPullState) -> PushPullState {
        guard configuration.signedClaims != nil else { return outgoing }
        var outgoing = outgoing
        // On the loop or not: the cache is locked; this host's certificate may have been renewed.
        if let own = configuration.signedClaims?.ownCertificate(), !certificates.contains(own, of: configuration.memberID),
            case .valid(let member, let key, let serial) = configuration.signedClaims?.checkCertificate(own)
        {
            certificates.insert(own, of: member, key: key, serial: serial)
        }
        outgoing.certificates = certificates.all()
        return outgoing
    }

    /// This host's key changed (rotation): hold its new certificate and re-issue its claims
    /// signed with the new key (`MembershipInstance.renewClaims`).
    public func hostKeyChanged() async throws(MembershipServiceError) {
        try await runtime.onLoop { state throws(MembershipServiceError) in
            guard state.phase == .running, state.instance != nil else { throw state.phase == .stopped ? .stopped : .notStarted }
            self.holdOwnCertificate(state)
            if let directives = state.instance?.renewClaims(now: self.now()) { self.execute(directives, state) }
        }
    }

    /// Checks and caches the certificates of a received state (on the loop, before the merge).
    func holdCertificates(of remote: PushPullState, _ state: MembershipShellState) {
        guard configuration.signedClaims != nil else { return }
        for certificate in remote.certificates where !certificates.contains(certificate, of: nil) {
            hold(certificate, from: "push-pull from \(remote.sender)", state)
        }
    }

    func hold(_ certificate: [UInt8], from source: String, _ state: MembershipShellState) {
        guard let signed = configuration.signedClaims else { return }
        switch signed.checkCertificate(certificate) {
        case .valid(let member, let key, let serial):
            if state.instance?.isBanned(member) == true { return }
            certificates.insert(certificate, of: member, key: key, serial: serial)
        case .refused(let reason):
            recordDrop(GossipDrop(.certificateRefused, reason), from: source, state)
        }
    }
}
