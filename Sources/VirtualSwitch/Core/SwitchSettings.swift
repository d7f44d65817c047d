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
    /// Hold frames for a VM whose port is paused, frozen or blocked, and deliver them in order
    /// when it runs again here or at its new host (Protocol.md §8.6.1). False: drop them, as
    /// before (kept for the benchmark's comparison).
    public var holdFramesDuringMoves: Bool = true
    /// Most bytes of frames held per port (1 MiB: about 690 full-size frames, 80 ms of a
    /// 100 Mbit/s stream). Frames past it are dropped and counted.
    public var heldFramesMaxBytes: Int = 1 << 20
    /// Oldest a held frame may get before it is dropped and counted; also how long a pause lasts
    /// when nobody ends it. The migration's downtime limit (300 ms by default, raised by the
    /// convergence ladder) plus the commit's round trip, with a wide margin.
    public var heldFramesMaxAge: Duration = .seconds(2)

    /// The defaults.
    public init() {}
}
