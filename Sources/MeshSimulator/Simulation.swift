public import Membership
public import MeshTime

/// A deterministic simulation of a mesh: N instances of the real `MembershipInstance` core in
/// one process, on virtual time, over a simulated network with latency, jitter, loss,
/// partitions, crashed, paused and slow members.
///
/// Everything random (latency, loss, each core's generator) derives from `seed`; the same seed
/// and the same sequence of calls replay exactly. Print `seed` in every test.
///
/// Members are addressed by index (`0..<memberCount`); ids are `node-0000`, `node-0001`, ...
/// Not thread-safe: drive it from one task.
public final class Simulation {
    /// How the mesh starts.
    public enum Bootstrap: Sendable, Equatable {
        /// Every member already knows every other as alive (a long-running mesh).
        case converged
        /// Member 0 starts alone; every other joins through a random earlier member, all at
        /// time zero.
        case joinThroughSeeds
    }

    enum NodeState {
        case running
        case crashed
        case paused(until: Int64)
        case left
    }

    struct Node {
        var instance: MembershipInstance
        var state: NodeState
        let id: MemberID
        let address: PeerAddress
        /// Extra one-way delay on everything this member sends and receives.
        var slowness: Int64 = 0
        /// Timers that came due while paused, run at resume.
        var deferredTimers: [MembershipTimer] = []
        var traffic = SimulatedTraffic()
    }

    /// The seed everything random derives from.
    public let seed: UInt64
    /// The settings every member runs with.
    public let settings: MembershipSettings
    /// The network conditions (loss may be changed between runs).
    public var network: SimulatedNetwork
    /// Wire treatment of datagrams.
    public let fidelity: SimulatedWireFidelity
    /// True when every member signs its claims and checks the others' (Protocol.md §4.16),
    /// with `SimulatedClaimAuthority`.
    public let signedClaims: Bool

    var nodes: [Node] = []
    var indexByAddress: [PeerAddress: Int] = [:]
    var indexByID: [MemberID: Int] = [:]
    var queue = EventQueue()
    var random: SeededRandomGenerator
    var nowNanos: Int64 = 0
    /// Partition group per member; datagrams only flow within a group. Empty: no partition.
    var partitionGroup: [Int] = []
    /// Site per member; datagrams between sites take `network.interSiteDelay` longer. Empty: one site.
    var siteOf: [Int] = []
    var statusObservers: [(SimulatedStatusChange) -> Void] = []
    var joinObservers: [(Int, MeshInstant) -> Void] = []
    var revocationObservers: [(Int, RevocationNotice, MeshInstant) -> Void] = []
    var deliveryObservers: [(SimulatedDelivery) -> Void] = []
    var stopRequested = false
    /// Encoded size of each piggybacked update seen so far (see `SimulatedWireFidelity`).
    var piggybackCosts: [MemberUpdate: Int] = [:]
    /// Events processed since creation (for profiling).
    public internal(set) var eventsProcessed = 0

    /// Creates and starts a mesh of `memberCount` members.
    public init(
        members memberCount: Int, settings: MembershipSettings = MembershipSettings(),
        network: SimulatedNetwork = SimulatedNetwork(), seed: UInt64, bootstrap: Bootstrap = .converged,
        fidelity: SimulatedWireFidelity = .encodeForSize, signedClaims: Bool = false
    ) {
        self.seed = seed
        self.signedClaims = signedClaims
        self.settings = settings
        self.network = network
        self.fidelity = fidelity
        self.random = SeededRandomGenerator(seed: seed)
        switch bootstrap {
        case .converged:
            let records = (0..<memberCount).map { index in
                MemberRecord(
                    id: Self.memberID(index), address: Self.address(index), status: .alive, incarnation: 0,
                    metadata: Self.metadata(index))
            }
            for index in 0..<memberCount {
                addNode(index: index, knownMembers: records)
            }
            for index in 0..<memberCount {
                startNode(index)
            }
        case .joinThroughSeeds:
            for index in 0..<memberCount {
                addNode(index: index, knownMembers: [])
                startNode(index)
                if index > 0 {
                    let seedIndex = random.next(below: index)
                    let directives = nodes[index].instance.join(seeds: [nodes[seedIndex].address], now: now)
                    execute(directives, by: index)
                }
            }
        }
    }

    // MARK: Identity of simulated members

    /// The id of the member at `index`.
    public static func memberID(_ index: Int) -> MemberID {
        let digits = String(index)
        return MemberID("node-" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits)
    }

    /// The gossip address of the member at `index` (a 10.x.y.z address, port 7946).
    public static func address(_ index: Int) -> PeerAddress {
        PeerAddress(host: "10.\((index >> 16) & 255).\((index >> 8) & 255).\(index & 255)", port: 7946)
    }

    /// Realistic metadata for the member at `index`, so byte counts reflect the real wire.
    public static func metadata(_ index: Int) -> MemberMetadata {
        let host = "10.\((index >> 16) & 255).\((index >> 8) & 255).\(index & 255)"
        return MemberMetadata(
            version: 1, domain: "dc1.example", cores: 64, memoryTotalBytes: 512 << 30,
            memoryFreeBytes: UInt64(200 + index % 100) << 30, runningVMs: UInt32(index % 40),
            cpuLoadMilli: UInt32(index * 37 % 1000), migrationsInFlight: 0, health: .ok, maintenance: false,
            channelAddress: PeerAddress(host: host, port: 7947), controlAddress: PeerAddress(host: host, port: 7948),
            keyFingerprint: (0..<32).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) })
    }

    // MARK: Queries

    /// Current virtual time.
    public var now: MeshInstant { MeshInstant(nanosecondsSinceOrigin: nowNanos) }
    /// Number of members ever created (crashed and left ones included).
    public var memberCount: Int { nodes.count }
    /// The id of a simulated member.
    public func id(of index: Int) -> MemberID { nodes[index].id }
    /// The core of a simulated member (a copy, for inspection).
    public func instance(of index: Int) -> MembershipInstance { nodes[index].instance }
    /// The traffic counters of a member.
    public func traffic(of index: Int) -> SimulatedTraffic { nodes[index].traffic }

    /// True unless the member crashed or left (paused members are running).
    public func isRunning(_ index: Int) -> Bool {
        switch nodes[index].state {
        case .running, .paused: return true
        case .crashed, .left: return false
        }
    }

    /// Indices of members that have not crashed or left.
    public var runningMembers: [Int] { nodes.indices.filter(isRunning) }

    /// How `observer` currently sees `subject` (`nil`: unknown to it).
    public func status(of subject: Int, seenBy observer: Int) -> MembershipStatusView {
        if subject == observer { return .known(.alive) }
        return nodes[observer].instance.status(of: nodes[subject].id).map(MembershipStatusView.known) ?? .unknown
    }

    /// How many running members other than `subject` see it with `status`.
    public func observerCount(seeing subject: Int, as status: MemberStatus) -> Int {
        let id = nodes[subject].id
        var count = 0
        for index in nodes.indices where index != subject && isRunning(index) {
            if nodes[index].instance.status(of: id) == status { count += 1 }
        }
        return count
    }

    // MARK: Observation

    /// Calls `handler` for every status change any member reports, in virtual-time order.
    public func observeStatusChanges(_ handler: @escaping (SimulatedStatusChange) -> Void) {
        statusObservers.append(handler)
    }

    /// Calls `handler(member, time)` when a member's join completes.
    public func observeJoins(_ handler: @escaping (Int, MeshInstant) -> Void) {
        joinObservers.append(handler)
    }

    /// Calls `handler` for every datagram delivered to a member (for tracing a failing seed).
    public func observeDeliveries(_ handler: @escaping (SimulatedDelivery) -> Void) {
        deliveryObservers.append(handler)
    }

    /// Calls `handler(member, notice, time)` whenever a member learns a newer revocation list.
    public func observeRevocations(_ handler: @escaping (Int, RevocationNotice, MeshInstant) -> Void) {
        revocationObservers.append(handler)
    }

    /// Makes the current `run` return after the event being processed (call from an observer).
    public func stop() {
        stopRequested = true
    }
}

/// A member's view of another member.
public enum MembershipStatusView: Equatable, Sendable {
    /// The observer does not know the subject.
    case unknown
    /// The observer sees the subject with this status.
    case known(MemberStatus)
}
