/// Lifeguard's local health multiplier ("awareness" in memberlist).
///
/// A member that misses nacks or has to refute suspicions of itself is probably the slow one
/// (CPU starvation, a full socket buffer): it raises its score and stretches its probe period
/// and suspicion of others accordingly, instead of accusing healthy peers.
struct LocalHealth: Hashable, Sendable {
    /// Current score, 0 (healthy) ..< `limit`.
    private(set) var score: Int = 0
    /// Exclusive upper bound of the score (`awarenessMaxMultiplier`).
    let limit: Int

    init(limit: Int) {
        self.limit = max(1, limit)
    }

    /// Adds `delta` (negative on success), clamped to 0..<limit.
    mutating func apply(_ delta: Int) {
        score = min(max(score + delta, 0), limit - 1)
    }

    /// `nanoseconds * (score + 1)`.
    func scale(_ nanoseconds: Int64) -> Int64 {
        nanoseconds * Int64(score + 1)
    }
}
