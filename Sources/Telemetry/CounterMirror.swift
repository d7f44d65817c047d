import NIOConcurrencyHelpers
public import Prometheus

/// Prometheus counters that mirror totals kept elsewhere (the gossip service's counters, the
/// switch's port counters): each scrape sets the total, and the counter grows by the difference
/// from the last total set. A total that went down (its source restarted, or an older reading
/// arriving after a newer one) moves nothing: a Prometheus counter never goes down.
public final class CounterMirror: Sendable {
    private struct Key: Hashable {
        let name: String
        let labels: [String]
    }

    private let registry: PrometheusCollectorRegistry
    private let last = NIOLockedValueBox<[Key: UInt64]>([:])

    /// Mirrors into `registry`.
    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Sets the total of counter `name` with `labels` to `total`.
    public func set(_ name: String, _ labels: [(String, String)] = [], to total: UInt64, help: String) {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        let delta: UInt64 = last.withLockedValue { last in
            let before = last[key] ?? 0
            guard total > before else {
                if last[key] == nil { last[key] = total }
                return 0
            }
            last[key] = total
            return total - before
        }
        let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
        let counter = labels.isEmpty ? registry.makeCounter(descriptor: descriptor) : registry.makeCounter(descriptor: descriptor, labels: labels)
        if delta > 0 { counter.increment(by: Int64(clamping: delta)) }
    }
}
