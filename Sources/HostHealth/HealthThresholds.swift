/// Where each measurement makes a host degraded and failing (agent configuration `health_*`,
/// Protocol.md §11.1). A nil bound is not evaluated. The defaults are far above what a busy but
/// working host shows, so that load alone (two cores kept busy by QEMU) never drains a host.
public struct HealthThresholds: Sendable, Hashable {
    /// A bound pair: at or above `degraded` the host is degraded, at or above `failing` failing.
    public struct Bounds: Sendable, Hashable {
        public var degraded: Double?
        public var failing: Double?
        public init(degraded: Double?, failing: Double?) {
            self.degraded = degraded
            self.failing = failing
        }

        /// The state a value puts the host in.
        public func state(_ value: Double) -> HealthState {
            if let failing, value >= failing { return .failing }
            if let degraded, value >= degraded { return .degraded }
            return .healthy
        }
    }

    /// QEMU processes that died in the last ten minutes or do not answer QMP, counted. One
    /// death alone (an operator's kill, one guest's bug) does not make a host degraded.
    public var qemuFailures = Bounds(degraded: 2, failing: 5)
    public var journalWriteMs = Bounds(degraded: 500, failing: 5_000)
    /// Per pressure key ("memory full"): percent stalled over 10 s. CPU pressure is not
    /// evaluated by default: on a small host running QEMU it is high whenever guests work.
    public var pressure: [String: Bounds] = [
        "memory full": Bounds(degraded: 10, failing: 40),
        "io full": Bounds(degraded: 30, failing: 80),
    ]
    public var eventLoopLagMs = Bounds(degraded: 1_000, failing: 10_000)
    /// Magnitude of the clock skew.
    public var clockSkewMs = Bounds(degraded: 2_000, failing: 60_000)

    public init() {}
}
