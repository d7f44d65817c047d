public import Logging
import MeshTime

/// The SWIM + Lifeguard membership protocol of one member, as a pure state machine
/// (Protocol.md §4).
///
/// A value type with no I/O, no clock and no randomness of its own: the shell feeds it events
/// (timers, received datagrams, push-pull results, operator commands), each with the current
/// time, and carries out the `MembershipDirective`s it returns, in order. Randomness comes
/// from the injected `SeededRandomGenerator`, so identical inputs give identical outputs.
///
/// Driving it (see also `PROTOCOL-SECTION.md`):
/// 1. `start(now:)` once, then `join(seeds:now:)` unless this is the first member.
/// 2. Every decoded datagram: `onDatagram(_:from:now:)` (or `onDatagram(bytes:from:now:)`).
/// 3. Every scheduled timer when due: `onTimer(_:now:)`.
/// 4. Push-pull: execute `.pushPull` directives and report with `onPushPullResponse` /
///    `onPushPullFailed`; answer incoming exchanges with `onPushPullRequest`.
/// 5. Operator actions: `updateMetadata(_:now:)`, `leave(now:)`.
public struct MembershipInstance: Sendable {
    /// The tunables this member runs with.
    public let settings: MembershipSettings
    /// This member's id.
    public let localID: MemberID
    /// This member's gossip address, as announced to others.
    public let localAddress: PeerAddress
    /// This member's incarnation; raised only to refute suspicions of itself.
    public internal(set) var incarnation: UInt64
    /// This member's own metadata, including its current version.
    public internal(set) var localMetadata: MemberMetadata

    enum Lifecycle: Sendable { case created, running, leaving, left }

    struct MemberState: Sendable {
        var address: PeerAddress
        var status: MemberStatus
        var incarnation: UInt64
        var metadata: MemberMetadata?
        var statusChangedAt: Int64
        /// The member's own signature of its newest self-claim held: its leave when `status`
        /// is left, else its alive at `signedIncarnation` (Protocol.md §4.16). Passed on in
        /// push-pull records; empty when none is held (a fixture, or signatures off).
        var signature: [UInt8] = []
        var signedIncarnation: UInt64 = 0
    }

    struct ProbeState: Sendable {
        let sequence: UInt64
        let target: MemberID
        var acked = false
        var expectedNacks = 0
        var nacks = 0
    }

    struct Relay: Sendable {
        let requester: PeerAddress
        /// Who asked: the relayed ack or nack is sealed for it (Protocol.md §4.12.1).
        let requesterID: MemberID
        let requesterSequence: UInt64
        let wantsNack: Bool
    }

    var table: [MemberID: MemberState] = [:]
    /// Suspicion timers of the members currently suspect (kept apart from `table`, which
    /// holds every member and should stay compact).
    var suspicions: [MemberID: Suspicion] = [:]
    /// Members other than this one whose status is alive or suspect.
    var liveCount = 0
    var health: LocalHealth
    var broadcasts = BroadcastQueue()
    var random: SeededRandomGenerator
    /// Round-robin probe order (shuffled each round); may hold ids that are no longer live.
    var probeOrder: [MemberID] = []
    var probeIndex = 0
    var nextSequence: UInt64 = 1
    var probe: ProbeState?
    var relays: [UInt64: Relay] = [:]
    var probeGeneration: UInt64 = 0
    var gossipTickPending = false
    var lifecycle = Lifecycle.created
    /// The newest revocation list held per domain (Protocol.md §4.14).
    var revocations: [String: RevocationNotice] = [:]
    /// The newest federation grant held per `domain/peer` (Protocol.md §4.15).
    var federationGrants: [String: FederationGrantNotice] = [:]
    /// Members whose host or certificate is revoked: forgotten and never learned again.
    var banned: Set<MemberID> = []
    /// Signs this member's claims and checks others' (Protocol.md §4.16); nil: gossip unsigned,
    /// nothing checked (the simulator's default and the tests of the protocol alone).
    let claims: (any ClaimAuthority)?
    /// This member's signature of its alive claim at `signedIncarnation` (signed once per incarnation).
    var localAliveSignature: [UInt8] = []
    var localSignedIncarnation: UInt64 = 0
    /// This member's signature of its leave claim, once it leaves.
    var localLeaveSignature: [UInt8] = []
    /// Set while handling a datagram when a claim's signer had no certificate: a push-pull with
    /// the datagram's sender fetches it (at most one per probe interval, `nextCertificatePull`).
    var certificateWanted = false
    var nextCertificatePull: Int64 = .min
    /// The secure-channel address named by the metadata of an alive claim dropped for want of
    /// its signer's certificate, per member not known yet: where a push-pull reaches that
    /// member (its datagrams' source is its gossip port). Unverified, so only ever dialled, and
    /// the secure channel proves who answers. At most `maxUnverifiedChannels`.
    var unverifiedChannels: [MemberID: PeerAddress] = [:]
    static let maxUnverifiedChannels = 64
    /// The current event's time, in nanoseconds.
    var now: Int64 = 0
    /// Directives produced by the current event.
    var output: [MembershipDirective] = []
    let logger: Logger
    let nanos: SettingsInNanoseconds

    /// Settings converted once, so hot paths do integer arithmetic only.
    struct SettingsInNanoseconds: Sendable {
        let probeInterval: Int64
        let probeTimeout: Int64
        let indirectNackTimeout: Int64
        let gossipInterval: Int64
        let deadMemberRetention: Int64
    }

    /// Creates a member that is not yet running.
    ///
    /// - Parameters:
    ///   - id: this member's id (its host id).
    ///   - address: its gossip address as others can reach it.
    ///   - metadata: its initial metadata; the version is kept as given.
    ///   - incarnation: the starting incarnation. A restarted member MAY start at 0: it will
    ///     learn its old incarnation from its peers and refute above it.
    ///   - settings: protocol tunables.
    ///   - random: the only randomness the core uses.
    ///   - knownMembers: members to know from the start, without announcing them (a fixture
    ///     for the simulator, or a cached view). Records about `id` itself are ignored.
    ///   - logger: receives debug-level logs of status changes (`mesh.peer` metadata).
    ///   - claims: signs this member's claims and checks the others' (Protocol.md §4.16); nil:
    ///     unsigned gossip, every claim accepted.
    public init(
        id: MemberID, address: PeerAddress, metadata: MemberMetadata = MemberMetadata(), incarnation: UInt64 = 0,
        settings: MembershipSettings = MembershipSettings(), random: SeededRandomGenerator,
        knownMembers: [MemberRecord] = [], logger: Logger = Logger(label: "hostmesh.membership"),
        claims: (any ClaimAuthority)? = nil
    ) {
        self.claims = claims
        self.localID = id
        self.localAddress = address
        self.localMetadata = metadata
        self.incarnation = incarnation
        self.settings = settings
        self.random = random
        self.logger = logger
        self.health = LocalHealth(limit: settings.awarenessMaxMultiplier)
        self.nanos = SettingsInNanoseconds(
            probeInterval: settings.probeInterval.wholeNanoseconds,
            probeTimeout: settings.probeTimeout.wholeNanoseconds,
            indirectNackTimeout: settings.indirectNackTimeout.wholeNanoseconds,
            gossipInterval: settings.gossipInterval.wholeNanoseconds,
            deadMemberRetention: settings.deadMemberRetention.wholeNanoseconds)
        table.reserveCapacity(knownMembers.count)
        for record in knownMembers where record.id != id {
            table[record.id] = MemberState(
                address: record.address, status: record.status, incarnation: record.incarnation,
                metadata: record.metadata, statusChangedAt: 0, signature: record.signature,
                signedIncarnation: record.incarnation)
            if record.status.isLive {
                liveCount += 1
                probeOrder.append(record.id)
            }
        }
        probeOrder.shuffle(using: &self.random)
    }

    // MARK: Queries

    /// This member as others should see it.
    public var localMember: Member {
        Member(
            id: localID, address: localAddress, status: lifecycle == .left || lifecycle == .leaving ? .left : .alive,
            incarnation: incarnation, metadata: localMetadata, statusChangedAt: .origin)
    }

    /// The local view of `id`, or `nil` if unknown (or forgotten). `localID` gives `localMember`.
    public func member(_ id: MemberID) -> Member? {
        if id == localID { return localMember }
        return table[id].map { snapshot(id, $0) }
    }

    /// The status of `id` in the local view; cheaper than `member(_:)`.
    public func status(of id: MemberID) -> MemberStatus? {
        table[id]?.status
    }

    /// Every other member known, in id order.
    public var knownMembers: [Member] {
        table.map { snapshot($0.key, $0.value) }.sorted { $0.id < $1.id }
    }

    /// Number of other members currently alive or suspect.
    public var liveMemberCount: Int { liveCount }

    /// The Lifeguard local health score: 0 is healthy; timeouts scale by (score + 1).
    public var localHealthScore: Int { health.score }

    /// Updates waiting to be piggybacked.
    public var pendingUpdates: [MemberUpdate] { broadcasts.pendingUpdates }

    /// True once `leave` has completed.
    public var hasLeft: Bool { lifecycle == .left }

    func snapshot(_ id: MemberID, _ state: MemberState) -> Member {
        Member(
            id: id, address: state.address, status: state.status, incarnation: state.incarnation,
            metadata: state.metadata, statusChangedAt: MeshInstant(nanosecondsSinceOrigin: state.statusChangedAt))
    }

    // MARK: Event plumbing

    mutating func begin(_ instant: MeshInstant) {
        now = instant.nanosecondsSinceOrigin
        output = []
    }

    mutating func finish() -> [MembershipDirective] {
        scheduleGossipIfNeeded()
        let result = output
        output = []
        return result
    }

    mutating func schedule(_ timer: MembershipTimer, at nanoseconds: Int64) {
        output.append(.schedule(timer, at: MeshInstant(nanosecondsSinceOrigin: nanoseconds)))
    }

    mutating func allocateSequence() -> UInt64 {
        defer { nextSequence &+= 1 }
        return nextSequence
    }
}
