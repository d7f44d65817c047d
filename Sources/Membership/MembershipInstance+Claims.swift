// Signed membership (Protocol.md §4.16): this member signs each of its claims once, and a
// claim from another member changes the local view only with its author's valid signature.
// Claims about this member itself are never applied, only refuted, so they need none.
extension MembershipInstance {
    /// True when `claim` may change the local view: signatures are off, or `signature` is its
    /// signer's. Otherwise the claim is dropped and a `.claimRejected` directive says why.
    mutating func admits(_ claim: MembershipClaim, signature: [UInt8]) -> Bool {
        rejection(of: claim, signature: signature) == nil
    }

    /// Why `claim` is dropped (counted and logged here), nil when it is admitted.
    mutating func rejection(of claim: MembershipClaim, signature: [UInt8]) -> ClaimRejection? {
        guard let claims else { return nil }
        let rejection: ClaimRejection
        if signature.isEmpty {
            rejection = .unsigned
        } else {
            switch claims.verify(claim.bytes, signature: signature, signer: claim.signer) {
            case .valid:
                return nil
            case .forged:
                rejection = .forged
                // Also what a claim signed with a member's new key looks like before its new
                // certificate arrived (key rotation): fetch certificates from the sender too.
                certificateWanted = true
            case .unknownSigner:
                rejection = .unknownSigner
                certificateWanted = true
            }
        }
        logger.debug(
            "claim dropped",
            metadata: ["mesh.peer": "\(claim.member)", "mesh.signer": "\(claim.signer)", "mesh.claim": "\(claim.kind)",
                       "reason": "\(rejection.rawValue)"])
        output.append(.claimRejected(rejection, kind: claim.kind, signer: claim.signer))
        return rejection
    }

    /// The signature to keep with `claim`: `signature` when it was received and verifies; a
    /// new one of this member's when it originates here (`signature == nil`); nil: drop it.
    mutating func checkedSignature(_ claim: MembershipClaim, _ signature: [UInt8]?) -> [UInt8]? {
        guard let signature else { return sign(claim) }
        return admits(claim, signature: signature) ? signature : nil
    }

    /// This member's signature of `claim`; empty when signatures are off.
    func sign(_ claim: MembershipClaim) -> [UInt8] {
        claims?.sign(claim.bytes) ?? []
    }

    /// This member's alive claim at its current incarnation, signed once per incarnation.
    mutating func localAlive(metadata: MemberMetadata?) -> MemberUpdate {
        if claims != nil, localAliveSignature.isEmpty || localSignedIncarnation != incarnation {
            localAliveSignature = sign(.alive(member: localID, incarnation: incarnation, address: localAddress))
            localSignedIncarnation = incarnation
        }
        return .alive(
            member: localID, incarnation: incarnation, address: localAddress, metadata: metadata,
            signature: localAliveSignature)
    }

    /// Signs this member's metadata as it now is (after every version change).
    mutating func signLocalMetadata() {
        guard claims != nil else { return }
        localMetadata.signature = sign(.metadata(member: localID, metadata: localMetadata))
    }

    /// After a datagram whose claims named a signer with no certificate held: pull state from
    /// the datagram's sender (it applied those claims, so it holds the certificates), at most
    /// once per probe interval (Protocol.md §4.16, "unknown signers"). A sender not known here
    /// yet (a member that joined through a seed that then died, whose own claims cannot be
    /// verified before its certificate arrives) is pulled from at the channel address its own
    /// dropped alive named (`unverifiedChannels`), else at the datagram's `source`.
    mutating func pullCertificatesIfWanted(from sender: MemberID, source: PeerAddress) {
        defer { certificateWanted = false }
        guard certificateWanted, lifecycle == .running, now >= nextCertificatePull, sender != localID else { return }
        let address: PeerAddress
        var channel: PeerAddress?
        if let state = table[sender] {
            guard state.status.isLive else { return }
            address = state.address
        } else {
            address = source
            channel = unverifiedChannels[sender]
        }
        nextCertificatePull = now + nanos.probeInterval
        output.append(
            .pushPull(
                PushPullRequest(
                    address: address, member: sender, purpose: .antiEntropy, state: localState(isJoin: false),
                    channelAddress: channel)))
    }

    /// Remembers where the member of an alive claim dropped for want of its signer's certificate
    /// says its secure channel listens (see `unverifiedChannels`), for a pull from it while it
    /// is not known. A forged or unsigned claim names nothing: it would only repoint the pull.
    mutating func noteUnverifiedChannel(of member: MemberID, metadata: MemberMetadata?) {
        guard claims != nil, let channel = metadata?.channelAddress else { return }
        if unverifiedChannels[member] == nil, unverifiedChannels.count >= Self.maxUnverifiedChannels {
            unverifiedChannels.removeAll()
        }
        unverifiedChannels[member] = channel
    }

    /// The signature a push-pull record of `state` carries (see `MemberState.signature`).
    func recordSignature(_ state: MemberState) -> [UInt8] {
        state.status == .left || state.signedIncarnation == state.incarnation ? state.signature : []
    }
}
