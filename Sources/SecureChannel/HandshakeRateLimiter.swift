public import MeshTime

/// Token buckets per source address that bound how many handshakes (each costs several
/// Diffie-Hellman operations) a single source can make us do. Pure: time is passed in.
public struct HandshakeRateLimiter: Sendable {
    private struct Bucket: Sendable { var tokens: Double; var updated: MeshInstant }

    /// Sustained handshakes per second per source.
    public let ratePerSecond: Double
    /// Burst size per source.
    public let burst: Double
    /// At most this many sources are tracked; the stalest are forgotten first.
    public let maxSources: Int
    private var buckets: [String: Bucket] = [:]

    /// Defaults allow 20 handshakes/s per source with bursts of 40.
    public init(ratePerSecond: Double = 20, burst: Double = 40, maxSources: Int = 4096) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.maxSources = maxSources
    }

    /// Takes one token for `source` at monotonic time `now`; false when the source is over its rate.
    public mutating func allow(source: String, now: MeshInstant) -> Bool {
        var bucket = buckets[source] ?? Bucket(tokens: burst, updated: now)
        let elapsed = (now - bucket.updated).inSeconds
        bucket.tokens = min(burst, bucket.tokens + elapsed * ratePerSecond)
        bucket.updated = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        if buckets[source] == nil, buckets.count >= maxSources { evictStalest() }
        buckets[source] = bucket
        return allowed
    }

    private mutating func evictStalest() {
        // Forget the quarter of sources seen longest ago: amortised O(1) per new source.
        let stalest = buckets.sorted { $0.value.updated < $1.value.updated }.prefix(max(1, maxSources / 4))
        for (source, _) in stalest { buckets[source] = nil }
    }
}
