/// Progress of an outgoing migration, for the command line.
public struct MigrationProgressUpdate: Codable, Sendable {
    /// Phase: prepare, transfer, postcopy, switchover.
    public var phase: String
    /// Percent of RAM transferred.
    public var percent: Double
    /// MB/s.
    public var mbPerSecond: Double
    /// Dirty rate, MB/s.
    public var dirtyMBPerSecond: Double
    /// Pre-copy round.
    public var iteration: Int
    /// Convergence measure in force.
    public var rung: String

    /// A progress report.
    public init(phase: String, percent: Double, mbPerSecond: Double, dirtyMBPerSecond: Double, iteration: Int, rung: String) {
        self.phase = phase
        self.percent = percent
        self.mbPerSecond = mbPerSecond
        self.dirtyMBPerSecond = dirtyMBPerSecond
        self.iteration = iteration
        self.rung = rung
    }
}
