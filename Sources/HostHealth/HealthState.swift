/// How a host rates itself (Protocol.md §11.1), worst last: `healthy` takes and keeps VMs;
/// `degraded` takes no new VM (placement and DRS never choose it) and keeps its own unless the
/// mesh's health policy evacuates degraded hosts; `failing` takes nothing and is evacuated
/// unless the policy is `off`.
public enum HealthState: String, Sendable, Hashable, Codable, CaseIterable, Comparable {
    case healthy, degraded, failing

    private var rank: Int {
        switch self {
        case .healthy: 0
        case .degraded: 1
        case .failing: 2
        }
    }

    /// Ordered from healthy to failing.
    public static func < (lhs: HealthState, rhs: HealthState) -> Bool { lhs.rank < rhs.rank }
}

/// One reason a host is not healthy: which measurement (or the operator) and what it showed.
public struct HealthReason: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What this reason makes of the host.
    public var state: HealthState
    /// What was seen, for people ("journal write took 1200 ms (degraded above 100 ms)").
    public var text: String

    public init(_ state: HealthState, _ text: String) {
        self.state = state
        self.text = text
    }

    public var description: String { "\(state.rawValue): \(text)" }
}
