public import Metrics
public import Prometheus

/// Points swift-metrics at a Prometheus registry, once per process (the executable calls it
/// before the agent starts). Library code only emits through swift-metrics; without this, what
/// it emits goes nowhere.
public enum MetricsBootstrap {
    /// Bootstraps swift-metrics with `registry` and the buckets of `HistogramBuckets`.
    public static func bootstrap(_ registry: PrometheusCollectorRegistry) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = HistogramBuckets.byName
        MetricsSystem.bootstrap(factory)
    }
}
