/// One UDP datagram of the gossip protocol, as the core produces and consumes it
/// (Protocol.md §4.2). `GossipCodec` maps it to and from `Hostmesh_V1_GossipDatagram`;
/// the encoded bytes are the plaintext that the shell encrypts.
public struct GossipDatagram: Hashable, Sendable {
    /// The sending member.
    public var sender: MemberID
    /// The probe message this datagram carries, or `nil` for a gossip-only datagram.
    public var primary: GossipPrimaryMessage?
    /// Piggybacked membership updates, most urgent first.
    public var updates: [MemberUpdate]

    /// Creates a datagram.
    public init(sender: MemberID, primary: GossipPrimaryMessage?, updates: [MemberUpdate] = []) {
        self.sender = sender
        self.primary = primary
        self.updates = updates
    }
}

/// The failure-detector messages (Protocol.md §4.3).
public enum GossipPrimaryMessage: Hashable, Sendable {
    /// Direct probe of `target`; answered with `.ack(sequence)`.
    case ping(sequence: UInt64, target: MemberID)
    /// Asks the receiver to probe a member on the sender's behalf.
    case pingRequest(PingRequest)
    /// The probed member answered (directly or through a relay).
    case ack(sequence: UInt64)
    /// A relay's target did not answer in time (Lifeguard).
    case nack(sequence: UInt64)
}

/// An indirect probe request (Protocol.md §4.3).
public struct PingRequest: Hashable, Sendable {
    /// The requester's probe sequence, echoed in the relayed ack or nack.
    public var sequence: UInt64
    /// The member to probe.
    public var target: MemberID
    /// Where to probe it.
    public var targetAddress: PeerAddress
    /// Whether the relay MUST answer with a nack when the target stays silent.
    public var wantsNack: Bool

    /// Creates a request.
    public init(sequence: UInt64, target: MemberID, targetAddress: PeerAddress, wantsNack: Bool) {
        self.sequence = sequence
        self.target = target
        self.targetAddress = targetAddress
        self.wantsNack = wantsNack
    }
}

/// A membership update disseminated by piggybacking (Protocol.md §4.5).
public enum MemberUpdate: Hashable, Sendable {
    /// `member` is alive at `incarnation` at `address`; carries its metadata when known.
    /// `signature`: `member`'s over `MembershipClaim.alive` (Protocol.md §4.16), empty if unsigned.
    case alive(member: MemberID, incarnation: UInt64, address: PeerAddress, metadata: MemberMetadata?, signature: [UInt8] = [])
    /// `from` suspects `member` at `incarnation`; `signature`: `from`'s over `MembershipClaim.suspect`.
    case suspect(member: MemberID, incarnation: UInt64, from: MemberID, signature: [UInt8] = [])
    /// `from` declared `member` dead at `incarnation`; `signature`: `from`'s over `MembershipClaim.dead`.
    case dead(member: MemberID, incarnation: UInt64, from: MemberID, signature: [UInt8] = [])
    /// `member` left gracefully at `incarnation`; `signature`: `member`'s over `MembershipClaim.leave`.
    case left(member: MemberID, incarnation: UInt64, signature: [UInt8] = [])
    /// `member` has new metadata (the highest `version` wins); signed in `metadata.signature`.
    case metadata(member: MemberID, metadata: MemberMetadata)
    /// A domain's signed revocation list (the highest version per domain wins, Protocol.md §4.14).
    case revocation(RevocationNotice)
    /// A domain's signed federation grant (the highest version per domain and peer domain wins,
    /// Protocol.md §4.15).
    case federationGrant(FederationGrantNotice)

    /// The member the update is about; nil for a revocation list, which is about a domain.
    public var member: MemberID? {
        switch self {
        case .alive(let member, _, _, _, _), .suspect(let member, _, _, _), .dead(let member, _, _, _),
            .left(let member, _, _), .metadata(let member, _):
            return member
        case .revocation, .federationGrant:
            return nil
        }
    }
}

/// A domain's revocation list as gossip carries it (Protocol.md §4.14): the signed bytes as
/// issued, with the domain and version read from them. The core only compares versions; the
/// shell verifies the signature before the core sees a notice (`MembershipServiceConfiguration`
/// `.revocationVerifier`), so a notice in the core is one the shell accepted.
public struct RevocationNotice: Hashable, Sendable {
    /// The domain whose certificates the list revokes.
    public var domain: String
    /// The list's version; a higher version replaces a lower one.
    public var version: UInt64
    /// The encoded `RevocationList` (identity.proto), exactly as signed.
    public var list: [UInt8]

    /// A notice.
    public init(domain: String, version: UInt64, list: [UInt8]) {
        self.domain = domain
        self.version = version
        self.list = list
    }
}

/// A domain's federation grant as gossip carries it (Protocol.md §4.15): the signed bytes as
/// issued, with the (domain, peer domain) and version read from them. As for revocation lists,
/// the core only compares versions; the shell verifies before the core sees a notice.
public struct FederationGrantNotice: Hashable, Sendable {
    /// `domain/peer_domain`: a newer version replaces the older one of the same key.
    public var key: String
    /// The grant's version.
    public var version: UInt64
    /// The encoded `FederationGrant` (identity.proto), exactly as signed.
    public var grant: [UInt8]

    /// A notice.
    public init(key: String, version: UInt64, grant: [UInt8]) {
        self.key = key
        self.version = version
        self.grant = grant
    }
}

/// One member in a push-pull state (Protocol.md §4.7).
public struct MemberRecord: Hashable, Sendable {
    /// The member's id.
    public var id: MemberID
    /// Its gossip address.
    public var address: PeerAddress
    /// Its status in the sender's view.
    public var status: MemberStatus
    /// The incarnation of that status.
    public var incarnation: UInt64
    /// Its newest metadata known to the sender.
    public var metadata: MemberMetadata?
    /// The member's own signature of its alive claim at `incarnation` (of its leave claim when
    /// `status` is left), Protocol.md §4.16; empty when the sender holds none.
    public var signature: [UInt8]

    /// Creates a record.
    public init(
        id: MemberID, address: PeerAddress, status: MemberStatus, incarnation: UInt64, metadata: MemberMetadata?,
        signature: [UInt8] = []
    ) {
        self.id = id
        self.address = address
        self.status = status
        self.incarnation = incarnation
        self.metadata = metadata
        self.signature = signature
    }

    /// A record describing `member`.
    public init(_ member: Member) {
        self.init(
            id: member.id, address: member.address, status: member.status,
            incarnation: member.incarnation, metadata: member.metadata)
    }
}

/// A full membership state for anti-entropy and join, carried over the secure channel
/// (Protocol.md §4.7). `GossipCodec` maps it to `Hostmesh_V1_GossipPushPullState`.
public struct PushPullState: Hashable, Sendable {
    /// The member that produced the state.
    public var sender: MemberID
    /// True when the initiator is joining the mesh through the responder.
    public var isJoin: Bool
    /// Every member the sender knows, itself included.
    public var members: [MemberRecord]
    /// The newest revocation list of each domain the sender holds.
    public var revocations: [RevocationNotice]
    /// The newest federation grant of each (domain, peer domain) the sender holds.
    public var federationGrants: [FederationGrantNotice]
    /// Encoded host certificates of the members the sender holds one for (Protocol.md §4.16).
    /// Opaque to the core: the shell fills them in before sending and checks them (into the
    /// cache its `ClaimAuthority` verifies with) before the core merges the state.
    public var certificates: [[UInt8]]

    /// Creates a state.
    public init(sender: MemberID, isJoin: Bool, members: [MemberRecord], revocations: [RevocationNotice] = [],
                federationGrants: [FederationGrantNotice] = [], certificates: [[UInt8]] = []) {
        self.sender = sender
        self.isJoin = isJoin
        self.members = members
        self.revocations = revocations
        self.federationGrants = federationGrants
        self.certificates = certificates
    }
}
