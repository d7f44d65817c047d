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

    /// Forgets the last total of counter `name` with `labels`: its source starts again from zero
    /// (a new process), so the next total set counts in full.
    public func restart(_ name: String, _ labels: [(String, String)] = []) {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        last.withLockedValue { last in last[key] = 0 }
    }

    /// Sets the total of counter `name` with `labels` to `total`, counted in units of `scale`
    /// (e.g. clock ticks counted as seconds: 1/100).
    public func set(_ name: String, _ labels: [(String, String)] = [], to total: UInt64, scale: Double = 1, help: String) {
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
        guard delta > 0 else { return }
        if scale == 1 { counter.increment(by: Int64(clamping: delta)) } else { counter.increment(by: Double(delta) * scale) }
    }
}
