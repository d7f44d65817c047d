/// One workload of `hostmesh bench migrate`, summarised: the medians of each path, and the
/// tunnel (and QEMU's TLS, when measured) against the direct reference.
public struct MigrationComparison: Sendable, Equatable {
    /// Medians of one path's rounds.
    public struct Medians: Sendable, Equatable {
        /// Total time, ms.
        public var totalMs: Double
        /// Guest pause, ms.
        public var downtimeMs: Double
        /// Throughput, MB/s.
        public var mbS: Double

        /// The medians of `rows` (all of one workload and path), or nil when there are none.
        init?(_ rows: [MigrationBenchmark.Row]) {
            guard let total = Spread.median(rows.map { Double($0.totalMs) }),
                  let downtime = Spread.median(rows.map { Double($0.downtimeMs) }),
                  let mbS = Spread.median(rows.map(\.mbS)) else { return nil }
            self.totalMs = total
            self.downtimeMs = downtime
            self.mbS = mbS
        }

        /// Medians as given.
        public init(totalMs: Double, downtimeMs: Double, mbS: Double) {
            self.totalMs = totalMs
            self.downtimeMs = downtimeMs
            self.mbS = mbS
        }
    }

    /// Target for `totalRatio` (tunnel total / direct total).
    public static let totalRatioTarget = 1.2
    /// Target for `downtimeDeltaMs` (tunnel downtime - direct downtime), ms.
    public static let downtimeDeltaTargetMs = 20.0

    /// "idle" or "dirty".
    public var workload: String
    /// QEMU to QEMU in clear; zeros when no direct round ran.
    public var direct: Medians
    /// hostmesh's tunnel; zeros when no tunnel round ran.
    public var tunnel: Medians
    /// QEMU's own TLS, when measured.
    public var qemuTLS: Medians?

    /// The medians of `workload`'s rows in `rows`, per path.
    public init(rows: [MigrationBenchmark.Row], workload: String) {
        // A reference round that did not complete has no figures to take a median of.
        func medians(_ path: String) -> Medians? { Medians(rows.filter { $0.workload == workload && $0.path == path && $0.failed == nil }) }
        self.workload = workload
        direct = medians("direct") ?? Medians(totalMs: 0, downtimeMs: 0, mbS: 0)
        tunnel = medians("tunnel") ?? Medians(totalMs: 0, downtimeMs: 0, mbS: 0)
        qemuTLS = medians("qemu-tls")
    }

    /// Tunnel total over direct total (target <= `totalRatioTarget`); a direct total under 1 ms counts as 1 ms.
    public var totalRatio: Double { BenchmarkRatio.of(tunnel.totalMs, to: direct.totalMs, floor: 1) }
    /// Tunnel downtime minus direct downtime, ms (target <= `downtimeDeltaTargetMs`).
    public var downtimeDeltaMs: Double { tunnel.downtimeMs - direct.downtimeMs }
    /// QEMU TLS total over direct total, when measured.
    public var qemuTLSTotalRatio: Double? { qemuTLS.map { BenchmarkRatio.of($0.totalMs, to: direct.totalMs, floor: 1) } }
    /// QEMU TLS downtime minus direct downtime, ms, when measured.
    public var qemuTLSDowntimeDeltaMs: Double? { qemuTLS.map { $0.downtimeMs - direct.downtimeMs } }
}
