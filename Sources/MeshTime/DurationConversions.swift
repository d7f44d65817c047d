// Every conversion of a `Duration` to a number lives here, so that truncation, clamping and
// the sign of negative spans are decided once. NIO's `TimeAmount` conversions are in
// ShellSupport (this module has no dependencies).

extension Duration {
    /// Whole nanoseconds, truncated toward zero and clamped to `Int64` (about ±292 years).
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        // `components` truncates toward zero, so both parts carry the span's sign.
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return saturatingAdd(scaled, attoseconds / 1_000_000_000)
    }

    /// Whole milliseconds, truncated toward zero and clamped to `Int64`.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return saturatingAdd(scaled, attoseconds / 1_000_000_000_000_000)
    }

    /// Seconds as a floating-point number (for rates and reports; not for deadlines).
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Milliseconds as a floating-point number (for reports; not for deadlines).
    public var inMilliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// `a + b`, clamped to `Int64` instead of trapping.
func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard overflow else { return sum }
    return b < 0 ? .min : .max
}

/// `a - b`, clamped to `Int64` instead of trapping.
func saturatingSubtract(_ a: Int64, _ b: Int64) -> Int64 {
    let (difference, overflow) = a.subtractingReportingOverflow(b)
    guard overflow else { return difference }
    return b < 0 ? .max : .min
}
