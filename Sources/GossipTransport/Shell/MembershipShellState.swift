import Membership
import NIOCore
import ShellSupport

/// Everything the membership service mutates, confined to its event loop (held in a
/// `LoopBoundShell`, so every access is checked to be on that loop).
final class MembershipShellState {
    var phase = ShellPhase.idle
    /// The protocol core; created once the socket is bound (its address includes the port).
    var instance: MembershipInstance?
    var channel: (any Channel)?
    var localAddress: PeerAddress?
    /// Metadata to start with (updates before `start()` land here).
    var metadata: MemberMetadata

    var keyring: GossipKeyring
    var sealer: GossipDatagramSealer
    var opener: GossipDatagramOpener
    var counters = GossipCounters()
    var dropLog: DropLogLimiter

    /// Pending core timers, cancelled on stop.
    var timers: [UInt64: Scheduled<Void>] = [:]
    var nextTimerID: UInt64 = 0
    var subscribers: [UInt64: AsyncStream<MembershipEvent>.Continuation] = [:]
    var nextSubscriberID: UInt64 = 0
    /// When each member's status or metadata last changed here (nanoseconds on the service timeline).
    var lastUpdate: [MemberID: Int64] = [:]

    /// Callers of `leave()` waiting for the core's `.leaveCompleted` (true) or the timeout (false).
    var leaveWaiters: [EventLoopPromise<Bool>] = []
    var leaveRequested = false
    var leaveTimer: Scheduled<Void>?
    /// Stop the service once the leave completes (graceful shutdown).
    var stopAfterLeave = false
    /// Whether a `run()` consumes the push-pull jobs.
    var runClaimed = false

    /// Gossip addresses as socket addresses (IP literals parsed, names resolved off the loop).
    var addresses: [PeerAddress: SocketAddress] = [:]
    var resolving: Set<PeerAddress> = []
    /// Writes issued since the last flush.
    var unflushed = false

    init(configuration: MembershipServiceConfiguration, keyring: GossipKeyring) {
        metadata = configuration.metadata
        self.keyring = keyring
        sealer = GossipDatagramSealer(session: configuration.session ?? .startingNow())
        opener = GossipDatagramOpener(localID: configuration.memberID, maxDatagramSize: configuration.settings.maxDatagramSize)
        dropLog = DropLogLimiter(interval: configuration.dropLogInterval)
    }
}

/// A push-pull exchange to carry out: the core's request and whom to dial for it.
struct PushPullJob: Sendable {
    var request: PushPullRequest
    var peer: PushPullPeer
}
