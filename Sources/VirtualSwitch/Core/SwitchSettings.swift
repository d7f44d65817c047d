/// Tunables of the switch core.
public struct SwitchSettings: Hashable, Sendable {
    /// A MAC that moves this many times within `duplicateDetectionWindow` is frozen and
    /// reported (EVPN's default: 5 moves in 180 s).
    public var duplicateDetectionMoves: Int = 5
    /// See `duplicateDetectionMoves`.
    public var duplicateDetectionWindow: Duration = .seconds(180)
    /// Connection-tracking entries per port; new connections beyond it are dropped.
    public var conntrackCapacity: Int = 65_536
    /// Idle timeouts of tracked connections.
    public var connectionTimeouts = ConnectionTimeouts()
    /// A learned address unused this long is forgotten.
    public var learnedAddressIdleTimeout: Duration = .seconds(600)
    /// How long a source port forwards stragglers when the caller does not say.
    public var defaultStragglerGrace: Duration = .seconds(10)
    /// Answer ARP requests from known bindings instead of flooding them.
    public var proxyARP: Bool = true

    /// The defaults.
    public init() {}
}
