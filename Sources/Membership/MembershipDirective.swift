public import MeshTime

/// What the shell MUST do after handing an event to `MembershipInstance` (Protocol.md §4).
///
/// Directives are returned in the order they should be carried out. The core never performs
/// I/O and never waits; everything it needs done is one of these.
public enum MembershipDirective: Hashable, Sendable {
    /// Encode `datagram` with `GossipCodec.encode`, encrypt it for `receiver` (the member
    /// expected at `address`, bound into the seal so that no other member opens it, Protocol.md
    /// §4.12.1), and send it over UDP to `address`. Loss is tolerated; the shell SHOULD NOT retry.
    case send(GossipDatagram, to: PeerAddress, receiver: MemberID)
    /// Call `onTimer(timer, now:)` at `deadline` (or as soon as possible after it). Timers are
    /// never cancelled: a timer that is no longer relevant is ignored by the core, so the shell
    /// MAY also drop it.
    case schedule(MembershipTimer, at: MeshInstant)
    /// Open a secure channel to `request.address`, send `request.state`, read the peer's state
    /// and hand it to `onPushPullResponse`; on any failure call `onPushPullFailed`.
    case pushPull(PushPullRequest)
    /// A member's status changed (or a member became known). For the shell's own view,
    /// metrics and logs; no action is needed for the protocol.
    case memberChanged(MemberStatusChange)
    /// A member's metadata was replaced by a newer version.
    case metadataChanged(Member)
    /// A dead or left member was forgotten after `deadMemberRetention`.
    case memberForgotten(MemberID)
    /// A join through `seed` completed: the local member now knows the seed's view.
    case joined(through: PeerAddress, knownMembers: Int)
    /// The leave announcement has been disseminated; the shell MAY now stop the node.
    case leaveCompleted
    /// A revocation list newer than the one held for its domain arrived (gossip or push-pull)
    /// or was learned locally; it is held and gossiped. The shell persists it and acts on it
    /// (closes the revoked hosts' channels, bans them with `ban(_:now:)`).
    case revocationLearned(RevocationNotice)
    /// A federation grant newer than the one held for its (domain, peer domain) arrived or was
    /// learned locally; it is held and gossiped. The shell persists and enforces it (§4.15).
    case federationGrantLearned(FederationGrantNotice)
    /// A claim (`kind`: alive, suspect, dead, leave, metadata) that `signer` should have signed
    /// was dropped (Protocol.md §4.16). For counters and rate-limited logs; nothing else to do.
    case claimRejected(ClaimRejection, kind: String, signer: MemberID)
}

/// Timers the core asks the shell to run (`MembershipDirective.schedule`).
public enum MembershipTimer: Hashable, Sendable {
    /// Start of a probe period (also ends the previous one). `generation` lets the core ignore
    /// a tick chain that was superseded.
    case probeTick(generation: UInt64)
    /// The direct ping with this sequence has had `probeTimeout` to be acked.
    case probeTimeout(sequence: UInt64)
    /// A ping sent on behalf of another member's ping-request has had `indirectNackTimeout`.
    case relayTimeout(sequence: UInt64)
    /// A suspicion of `member` may have run out.
    case suspicionTimeout(member: MemberID)
    /// Send pending updates to random members.
    case gossipTick
    /// Start a push-pull state exchange with a random member.
    case pushPullTick
}

/// Why a push-pull exchange is made.
public enum PushPullPurpose: Hashable, Sendable {
    /// Joining the mesh through a seed address.
    case join
    /// Periodic anti-entropy with a live member.
    case antiEntropy
    /// Trying to reach a member marked dead (healing a partition).
    case reconnect
}

/// A push-pull exchange the shell MUST carry out over the secure channel.
public struct PushPullRequest: Hashable, Sendable {
    /// The peer's gossip address; the shell maps it to the peer's secure-channel endpoint
    /// (the member's metadata `channelAddress` when known).
    public var address: PeerAddress
    /// The peer's member id, when known (not for seeds).
    public var member: MemberID?
    /// Why the exchange is made.
    public var purpose: PushPullPurpose
    /// The local state to send.
    public var state: PushPullState
    /// For a member not known yet: the secure-channel address its own (unverified) alive claim
    /// named, for the shell to dial when it knows none (nil: none named).
    public var channelAddress: PeerAddress?

    /// Creates a request.
    public init(address: PeerAddress, member: MemberID?, purpose: PushPullPurpose, state: PushPullState,
                channelAddress: PeerAddress? = nil) {
        self.address = address
        self.member = member
        self.purpose = purpose
        self.state = state
        self.channelAddress = channelAddress
    }
}
