/// Rules that cannot all hold: found when a rule is written, reported, never guessed at.
public enum RuleConflicts {
    /// Throws `.conflict` naming the first rule of `existing` that `rule` contradicts (a rule
    /// with the same name is the one being replaced and is not compared). Only "must" rules
    /// conflict: a "should" rule yields.
    public static func check(_ rule: PlacementRule, against existing: [PlacementRule]) throws(PlacementError) {
        guard rule.must else { return }
        for other in existing.sorted(by: { $0.name < $1.name }) where other.must && other.name != rule.name {
            let shared = Set(rule.vms).intersection(other.vms).sorted()
            switch (rule.kind, other.kind) {
            case (.affinity, .antiAffinity), (.antiAffinity, .affinity):
                if shared.count >= 2 {
                    throw .conflict("rule \(rule.name) (\(rule.kind.rawValue)) contradicts must rule \(other.name) (\(other.kind.rawValue)): both name \(shared.joined(separator: ", ")); remove one or make it \"should\"")
                }
            case (.runOn, .runOn):
                if !shared.isEmpty, Set(rule.hosts).isDisjoint(with: other.hosts) {
                    throw .conflict("rule \(rule.name) and must rule \(other.name) leave \(shared.joined(separator: ", ")) no host: their host lists have nothing in common")
                }
            case (.runOn, .notOn), (.notOn, .runOn):
                let allowed = rule.kind == .runOn ? rule : other, denied = rule.kind == .runOn ? other : rule
                if !shared.isEmpty, Set(allowed.hosts).isSubset(of: denied.hosts) {
                    throw .conflict("rule \(rule.name) and must rule \(other.name) leave \(shared.joined(separator: ", ")) no host: every run-on host is also a not-on host")
                }
            case (.affinity, .runOn), (.runOn, .affinity), (.affinity, .notOn), (.notOn, .affinity), (.affinity, .affinity),
                 (.antiAffinity, .antiAffinity), (.antiAffinity, .runOn), (.runOn, .antiAffinity), (.antiAffinity, .notOn),
                 (.notOn, .antiAffinity), (.notOn, .notOn):
                continue
            }
        }
    }
}
