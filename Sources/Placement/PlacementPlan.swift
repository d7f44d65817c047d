/// Why a move is proposed.
public enum MoveReason: Sendable, Hashable, CustomStringConvertible {
    /// Its host is in maintenance.
    case evacuation
    /// It breaks this "must" rule where it is.
    case rule(String)
    /// It lowers the imbalance.
    case balance

    /// Mandatory moves are made at every threshold and automation level.
    public var isMandatory: Bool { self != .balance }

    public var description: String {
        switch self {
        case .evacuation: return "host in maintenance"
        case .rule(let name): return "keeps rule \(name)"
        case .balance: return "balance"
        }
    }
}

/// One proposed migration.
public struct PlacementMove: Sendable, Hashable {
    public var vm: String
    public var vmName: String
    public var from: String
    public var to: String
    public var reason: MoveReason
    /// Imbalance before and after this move (in plan order).
    public var imbalanceBefore: Double
    public var imbalanceAfter: Double
    /// The loads of the source and destination after the move.
    public var sourceLoadAfter: Double
    public var destinationLoadAfter: Double
}

/// A VM that must move (its host is in maintenance, or it breaks a "must" rule) but that no host
/// can take, with why: it stays where it is.
public struct UnplacedVM: Sendable, Hashable {
    public var vm: String
    public var vmName: String
    public var host: String
    public var reason: String
}

/// What one round of balancing proposes.
public struct PlacementPlan: Sendable, Hashable {
    public var moves: [PlacementMove]
    public var unplaced: [UnplacedVM]
    /// Rules the placement breaks before the moves, and after them.
    public var violationsBefore: [RuleViolation]
    public var violationsAfter: [RuleViolation]
    public var imbalanceBefore: Double
    public var imbalanceAfter: Double
    /// The threshold's target imbalance (balancing stops at or below it).
    public var target: Double
    /// Host loads after the plan, by host id.
    public var loadsAfter: [String: Double]
}
