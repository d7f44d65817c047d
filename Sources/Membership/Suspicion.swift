#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The Lifeguard dynamic suspicion timeout of one suspected member (memberlist `suspicion.go`).
///
/// The timeout starts at `maximum` and shrinks logarithmically towards `minimum` as up to
/// `expectedConfirmations` other members independently report the same suspicion.
struct Suspicion: Hashable, Sendable {
    /// When the suspicion started.
    let startedAt: Int64
    /// Confirmations after which the timeout reaches the minimum (0: use the minimum at once).
    let expectedConfirmations: Int
    let minimum: Int64
    let maximum: Int64
    /// Members that reported the suspicion, the first accuser included.
    private(set) var accusers: [MemberID]

    init(accuser: MemberID, startedAt: Int64, expectedConfirmations: Int, minimum: Int64, maximum: Int64) {
        self.accusers = [accuser]
        self.startedAt = startedAt
        self.expectedConfirmations = expectedConfirmations
        self.minimum = minimum
        self.maximum = maximum
    }

    /// Independent confirmations so far (accusers beyond the first).
    var confirmations: Int { accusers.count - 1 }

    /// Records `accuser`; true if it is a new confirmation that shortened the timeout.
    mutating func confirm(_ accuser: MemberID) -> Bool {
        guard confirmations < expectedConfirmations, !accusers.contains(accuser) else { return false }
        accusers.append(accuser)
        return true
    }

    /// When the member is declared dead unless it refutes first.
    var deadline: Int64 {
        startedAt + Self.timeout(
            confirmations: confirmations, expected: expectedConfirmations, minimum: minimum, maximum: maximum)
    }

    /// `max - log(n+1)/log(k+1) * (max - min)`, floored to milliseconds, never below `min`.
    static func timeout(confirmations n: Int, expected k: Int, minimum: Int64, maximum: Int64) -> Int64 {
        guard k >= 1 else { return minimum }
        let fraction = log(Double(n) + 1) / log(Double(k) + 1)
        let raw = Double(maximum) - fraction * Double(maximum - minimum)
        let millis = (raw / 1e6).rounded(.down)
        return max(Int64(millis) * 1_000_000, minimum)
    }
}
