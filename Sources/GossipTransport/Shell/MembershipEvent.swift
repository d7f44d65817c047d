public import Membership

/// What a `MembershipService` reports to its subscribers (`events()`), in the order it happened.
public enum MembershipEvent: Hashable, Sendable {
    /// A member's status changed, or a member became known (`previousStatus == nil`).
    case memberChanged(MemberStatusChange)
    /// A member's metadata was replaced by a newer version.
    case metadataChanged(Member)
    /// A dead or left member was forgotten after `deadMemberRetention`.
    case memberForgotten(MemberID)
    /// A join through `seed` completed; this member now knows `knownMembers` live members.
    case joined(through: PeerAddress, knownMembers: Int)
    /// The background join through the configured seeds gave up (every seed refused).
    case joinFailed([JoinFailure])
    /// This member's leave announcement has been disseminated.
    case leaveCompleted
    /// A revocation list newer than the one held for its domain, verified
    /// (`revocationVerifier`), is now held and gossiped: persist it and act on it.
    case revocationLearned(RevocationNotice)
    /// A federation grant newer than the one held for its (domain, peer domain), verified
    /// (`federationGrantVerifier`), is now held and gossiped: persist it and enforce it.
    case federationGrantLearned(FederationGrantNotice)
}

/// One member as this service sees it, for `hostmesh members`.
public struct MemberSnapshot: Hashable, Sendable {
    /// The member: id, gossip address, status, incarnation, metadata.
    public var member: Member
    /// True for this service's own member.
    public var isLocal: Bool
    /// Time since this service last saw the member's status or metadata change.
    public var sinceLastUpdate: Duration

    /// A snapshot.
    public init(member: Member, isLocal: Bool, sinceLastUpdate: Duration) {
        self.member = member
        self.isLocal = isLocal
        self.sinceLastUpdate = sinceLastUpdate
    }

    /// The member's id.
    public var id: MemberID { member.id }
    /// The member's status.
    public var status: MemberStatus { member.status }
}

/// Whom a push-pull exchange goes to (the argument of the `PushPullExchange` closure).
public struct PushPullPeer: Hashable, Sendable, CustomStringConvertible {
    /// The peer's member id; nil when joining through a seed (the channel tells who answered).
    public var member: MemberID?
    /// The secure-channel endpoint to dial: the seed address as given to `join(seeds:)`, else
    /// the member's metadata `channelAddress`, else, for a member not known yet, the one its
    /// unverified alive named (`PushPullRequest.channelAddress`), else its gossip address.
    /// Dial it expecting `member`: only the secure channel proves who answers.
    public var address: PeerAddress
    /// The peer's gossip (UDP) address, when known.
    public var gossipAddress: PeerAddress?
    /// Why the exchange is made.
    public var purpose: PushPullPurpose

    /// A peer.
    public init(member: MemberID?, address: PeerAddress, gossipAddress: PeerAddress?, purpose: PushPullPurpose) {
        self.member = member
        self.address = address
        self.gossipAddress = gossipAddress
        self.purpose = purpose
    }

    /// `member@address (purpose)`.
    public var description: String {
        "\(member.map { "\($0)@" } ?? "")\(address) (\(purpose))"
    }
}

/// Carries one push-pull exchange over the secure channel (Protocol.md §4.9): open a mutually
/// authenticated channel to `peer.address`, send the request bytes (an encoded
/// `GossipPushPullState`), and return the peer's answer bytes. The peer's side calls
/// `MembershipService.handlePushPull`. The closure MUST honour task cancellation (the service
/// cancels it after `pushPullTimeout`) and SHOULD throw an error conforming to
/// `PushPullRefusal` when the peer refused this member for a reason retrying will not fix.
public typealias PushPullExchange = @Sendable (_ peer: PushPullPeer, _ request: [UInt8]) async throws -> [UInt8]

/// Marks an error of a `PushPullExchange` as final: the peer refused this member (for example
/// its certificate did not verify). `join(seeds:)` does not retry a seed that refused.
public protocol PushPullRefusal: Error {}

/// Why a join through one seed failed.
public struct JoinFailure: Error, Hashable, Sendable, CustomStringConvertible {
    /// The seed.
    public var seed: PeerAddress
    /// What went wrong, as the exchange reported it.
    public var reason: String
    /// True if the seed refused this member (`PushPullRefusal`); retrying will not help.
    public var refused: Bool

    /// A failure.
    public init(seed: PeerAddress, reason: String, refused: Bool) {
        self.seed = seed
        self.reason = reason
        self.refused = refused
    }

    /// `seed: reason`.
    public var description: String {
        "\(seed) \(refused ? "refused this member" : "did not answer"): \(reason)"
    }
}
