public import MeshTime

/// Lifecycle status of a member as one observer sees it (Protocol.md §4.5).
public enum MemberStatus: String, Hashable, Sendable, CaseIterable {
    /// Answering probes, or not yet known otherwise.
    case alive
    /// Missed a probe (direct and indirect); it has a suspicion timeout to refute.
    case suspect
    /// Declared failed. Only an alive message with a higher incarnation revives it.
    case dead
    /// Left gracefully. Only an alive message with a higher incarnation brings it back.
    case left

    /// True for `alive` and `suspect`: members that are probed and gossiped to.
    public var isLive: Bool { self == .alive || self == .suspect }
}

/// A member as one observer currently sees it.
public struct Member: Hashable, Sendable {
    /// The member's id.
    public var id: MemberID
    /// Its gossip (UDP) address.
    public var address: PeerAddress
    /// Its status in the observer's view.
    public var status: MemberStatus
    /// The incarnation the status refers to. Only the member itself increases it.
    public var incarnation: UInt64
    /// Its newest metadata known to the observer, if any has arrived yet.
    public var metadata: MemberMetadata?
    /// When the observer last changed `status` (or first learned of the member).
    public var statusChangedAt: MeshInstant

    /// Creates a member snapshot.
    public init(
        id: MemberID, address: PeerAddress, status: MemberStatus, incarnation: UInt64,
        metadata: MemberMetadata?, statusChangedAt: MeshInstant
    ) {
        self.id = id
        self.address = address
        self.status = status
        self.incarnation = incarnation
        self.metadata = metadata
        self.statusChangedAt = statusChangedAt
    }
}

/// A member's status changed in the local view (or the member was first learned of).
public struct MemberStatusChange: Hashable, Sendable {
    /// The member after the change.
    public var member: Member
    /// Its status before the change; `nil` when the member was unknown until now.
    public var previousStatus: MemberStatus?

    /// Creates a change record.
    public init(member: Member, previousStatus: MemberStatus?) {
        self.member = member
        self.previousStatus = previousStatus
    }
}
