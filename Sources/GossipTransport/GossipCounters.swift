/// Traffic and drop counters of a `MembershipService`, for metrics (`mesh.gossip.*`) and the
/// `members` command. Monotonic since the service started, except `localHealthScore`.
public struct GossipCounters: Hashable, Sendable {
    /// UDP datagrams received, valid or not.
    public var datagramsIn: UInt64 = 0
    /// UDP payload bytes received.
    public var bytesIn: UInt64 = 0
    /// UDP datagrams handed to the socket.
    public var datagramsOut: UInt64 = 0
    /// UDP payload bytes handed to the socket.
    public var bytesOut: UInt64 = 0
    /// Datagrams that could not be sent (unresolvable address, socket error).
    public var sendFailures: UInt64 = 0
    /// Received datagrams dropped, by reason.
    public var drops: [GossipDropReason: UInt64] = [:]
    /// Push-pull exchanges this member started (join, anti-entropy, reconnect).
    public var pushPullsStarted: UInt64 = 0
    /// Of those, the ones that failed (unreachable, refused, timed out, invalid answer).
    public var pushPullsFailed: UInt64 = 0
    /// Push-pull exchanges other members started with this one.
    public var pushPullsServed: UInt64 = 0
    /// The Lifeguard local health score (0 is healthy), a gauge.
    public var localHealthScore: Int = 0

    /// Zero counters.
    public init() {}

    /// Datagrams dropped for `reason`.
    public func dropped(_ reason: GossipDropReason) -> UInt64 {
        drops[reason, default: 0]
    }

    /// Datagrams dropped for any reason.
    public var totalDrops: UInt64 {
        drops.values.reduce(0, +)
    }
}
