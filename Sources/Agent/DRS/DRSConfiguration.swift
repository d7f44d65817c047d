/// How often DRS runs and how it limits itself (agent configuration `drs_*`, Protocol.md §10.5).
public struct DRSConfiguration: Sendable, Equatable {
    /// Seconds between balancing rounds (each round waits this ±10%, jittered per agent).
    public var interval: Double = 60
    /// Seconds between DRS anti-entropy sends (records and this host's VM loads).
    public var syncInterval: Double = 2
    /// Seconds a VM that moved is left alone by balancing.
    public var hold: Double = 300
    /// DRS moves under way in the whole mesh at once.
    public var maxConcurrentMoves: Int = 4

    public init() {}
}
