/// The smallest, middle and largest of a set of measurements: what `hostmesh bench` prints
/// for repeated runs.
public struct Spread<Value: Comparable & Sendable>: Sendable, Equatable {
    /// The smallest value.
    public var min: Value
    /// The middle value: for an even count the upper of the two middle values, so it is always
    /// a value that was measured (never an average of two runs).
    public var median: Value
    /// The largest value.
    public var max: Value

    /// The spread of `values`, or nil when there are none.
    public init?(_ values: [Value]) {
        let sorted = values.sorted()
        guard let first = sorted.first, let last = sorted.last else { return nil }
        min = first
        median = sorted[sorted.count / 2]
        max = last
    }

    /// The median of `values`, or nil when there are none.
    public static func median(_ values: [Value]) -> Value? { Spread(values)?.median }
}

/// How much slower or faster a measurement is than its reference.
public enum BenchmarkRatio {
    /// `value / reference`, with the reference raised to `floor` so an (almost) zero reference
    /// gives a large finite ratio instead of infinity or NaN.
    public static func of(_ value: Double, to reference: Double, floor: Double) -> Double {
        value / Swift.max(reference, floor)
    }
}
