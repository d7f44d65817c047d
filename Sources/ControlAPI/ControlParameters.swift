/// Parameters of a control method that check their own values. `ControlRequest.params(_:)`
/// calls `validate()` after decoding, so a handler never sees a value outside the documented
/// ranges (Protocol.md §7: absurd values are answered with `bad_request`, never acted on).
public protocol ControlParameters: Decodable {
    /// Throws `bad_request` naming the first parameter outside its range, and the range.
    func validate() throws(ControlError)
}

/// The checks parameter types share, with one wording for every method.
public enum ControlParameter {
    /// Throws unless `value` is in `range`.
    public static func check<T: BinaryInteger>(_ name: String, _ value: T, in range: ClosedRange<T>) throws(ControlError) {
        guard range.contains(value) else {
            throw .badRequest("parameter \(name) is \(value), outside the allowed \(range.lowerBound)...\(range.upperBound)")
        }
    }

    /// Throws when `value` is empty; `expected` says what to give instead.
    public static func nonEmpty(_ name: String, _ value: String, expected: String = "a VM name or id") throws(ControlError) {
        guard !value.isEmpty else { throw .badRequest("parameter \(name) is empty: give \(expected)") }
    }
}
