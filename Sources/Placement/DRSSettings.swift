/// The mesh-wide DRS settings, replicated to every agent (Protocol.md §10.3).
public struct DRSSettings: Codable, Sendable, Hashable {
    /// Who carries out the moves DRS finds.
    public enum Automation: String, Codable, Sendable, CaseIterable {
        /// Moves are only recommended (`hostmesh drs recommendations`); an operator applies them.
        case manual
        /// Initial placement is automatic; balancing moves are only recommended.
        case partial
        /// Initial placement and balancing are automatic.
        case full
    }

    public var automation: Automation
    /// Migration threshold, 1-5: 1 makes only mandatory moves (maintenance, broken "must"
    /// rules); 3 is the default; 5 takes any move that improves the balance.
    public var threshold: Int

    /// Partial automation and threshold 3, as vSphere's defaults.
    public init(automation: Automation = .partial, threshold: Int = 3) {
        self.automation = automation
        self.threshold = threshold
    }

    /// Refused settings, with the range.
    public func validate() throws(PlacementError) {
        guard (1...5).contains(threshold) else {
            throw .badSetting("migration threshold \(threshold) is out of range: give 1 (mandatory moves only) to 5 (any improvement); 3 is the default")
        }
    }

    /// What the threshold means for balancing (Protocol.md §10.4).
    public var balance: BalanceTolerance { BalanceTolerance(threshold: threshold) }
}

/// The numbers behind a migration threshold: balancing starts only when the imbalance (the
/// standard deviation of host loads) exceeds `target`, and a move is taken only if its goodness
/// (how much it lowers the sum of squared deviations of the host loads from their mean) is at
/// least `minimumGoodness` plus its cost.
public struct BalanceTolerance: Sendable, Hashable {
    /// False at threshold 1: only mandatory moves.
    public var balances: Bool
    /// Imbalance at or below which nothing is moved for balance.
    public var target: Double
    /// Least goodness a move must bring (before its cost).
    public var minimumGoodness: Double
    /// Goodness a move must add per GiB of VM memory it copies (its cost).
    public var costPerGiB: Double
    /// A plan that starts balancing (imbalance above `target`) goes on while the imbalance is
    /// above this fraction of the target: a band, so noise around the target does not start a
    /// round's moves again and again.
    public static let resumeFraction = 0.75

    public init(threshold: Int) {
        switch threshold {
        case ...1: (balances, target, minimumGoodness) = (false, .infinity, .infinity)
        case 2: (balances, target, minimumGoodness) = (true, 0.20, 0.04)
        case 3: (balances, target, minimumGoodness) = (true, 0.10, 0.01)
        case 4: (balances, target, minimumGoodness) = (true, 0.05, 0.004)
        default: (balances, target, minimumGoodness) = (true, 0.0, 0.0005)
        }
        costPerGiB = 0.001
    }
}
