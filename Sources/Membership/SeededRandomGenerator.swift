/// The membership core's only source of randomness: a small deterministic generator
/// (SplitMix64) seeded by whoever creates the core.
///
/// A real shell seeds it from `SystemRandomNumberGenerator`; the simulator derives one seed per
/// member from the simulation seed, so a run is reproducible from that single number.
/// Not cryptographic: it only chooses probe order and gossip targets.
public struct SeededRandomGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        self.state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound` (multiply-shift; the bias is below 2^-32 for any bound we use).
    /// `bound` MUST be positive.
    public mutating func next(below bound: Int) -> Int {
        precondition(bound > 0, "next(below:) needs a positive bound")  // programmer error
        let (high, _) = next().multipliedFullWidth(by: UInt64(bound))
        return Int(high)
    }

    /// A uniformly distributed fraction in `0..<1`.
    public mutating func nextUnitInterval() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
