/// What a host measured about itself at one moment (Protocol.md §11.1). A measurement that
/// could not be made is nil and counts as nothing: `Agent/Health` says in a reason when a probe
/// itself fails (a journal that cannot be written is failing, not unknown).
public struct HealthMeasurement: Sendable, Hashable {
    /// This host's VMs wanted running whose QEMU is gone (died, crashed) or does not answer QMP.
    public var qemuFailures: [String]
    /// Milliseconds one durable journal write took (nil: not measured); `.infinity`: it failed.
    public var journalWriteMs: Double?
    /// Pressure stall information, percent of time stalled over 10 s, keyed
    /// `"<resource> <some|full>"` ("memory full", "io some", "cpu some"); empty where the kernel has none.
    public var pressure: [String: Double]
    /// Milliseconds a timer on the agent's event loops fired late (the worst loop).
    public var eventLoopLagMs: Double?
    /// This host's clock against its peers', milliseconds (the lower median of the peers'
    /// offsets by magnitude; nil with fewer than two peers, where a skewed host cannot be told
    /// from a skewed peer).
    public var clockSkewMs: Double?

    public init(qemuFailures: [String] = [], journalWriteMs: Double? = nil, pressure: [String: Double] = [:], eventLoopLagMs: Double? = nil,
                clockSkewMs: Double? = nil) {
        self.qemuFailures = qemuFailures
        self.journalWriteMs = journalWriteMs
        self.pressure = pressure
        self.eventLoopLagMs = eventLoopLagMs
        self.clockSkewMs = clockSkewMs
    }

    /// The skew to report from peers' clock offsets (milliseconds, peer minus this host, or the
    /// reverse: only the magnitude matters): the lower median by magnitude, so that one skewed
    /// peer among healthy ones does not make this host look skewed. nil with fewer than two.
    public static func clockSkew(offsets: [Double]) -> Double? {
        guard offsets.count >= 2 else { return nil }
        let sorted = offsets.sorted { abs($0) < abs($1) }
        return sorted[(sorted.count - 1) / 2]
    }
}
