/// The rules that concern each VM of a model, and whether a placement keeps them.
struct RuleBook {
    let rules: [PlacementRule]
    /// Per VM index: the indices of the rules naming it.
    let byVM: [[Int]]
    /// Per rule: the VM indices it names (VMs that do not exist are ignored).
    let members: [[Int]]

    init(_ rules: [PlacementRule], vms: [PlacementVM]) {
        self.rules = rules.sorted { LoadModel.precedes($0.name, $1.name) }
        var byName: [String: Int] = [:]
        for (v, vm) in vms.enumerated() {
            byName[vm.id] = v
            if byName[vm.name] == nil { byName[vm.name] = v }
        }
        var byVM = Array(repeating: [Int](), count: vms.count)
        var members: [[Int]] = []
        for (r, rule) in self.rules.enumerated() {
            let named = Array(Set(rule.vms.compactMap { byName[$0] })).sorted()
            members.append(named)
            for v in named { byVM[v].append(r) }
        }
        self.byVM = byVM
        self.members = members
    }

    /// The rules VM `v` would break on host `d` given where the others are in `model`; only
    /// "must" rules when `mustOnly`.
    func broken(placing v: Int, on d: Int, in model: LoadModel, mustOnly: Bool = false) -> [PlacementRule] {
        var broken: [PlacementRule] = []
        let host = model.hosts[d].id
        for r in byVM[v] {
            let rule = rules[r]
            if mustOnly && !rule.must { continue }
            let keeps: Bool
            switch rule.kind {
            case .runOn: keeps = rule.hosts.contains(host)
            case .notOn: keeps = !rule.hosts.contains(host)
            case .antiAffinity: keeps = !members[r].contains { $0 != v && model.location[$0] == d }
            case .affinity:
                // The others must be on d, except those on an evacuating host (they will follow).
                keeps = members[r].allSatisfy { $0 == v || model.location[$0] == d || model.hosts[model.location[$0]].availability == .evacuating }
            }
            if !keeps { broken.append(rule) }
        }
        return broken
    }

    /// Every rule the placement in `model` breaks, with the VMs that break it.
    func violations(in model: LoadModel) -> [RuleViolation] {
        var found: [RuleViolation] = []
        for (r, rule) in rules.enumerated() {
            let names = members[r].map { model.vms[$0].name }
            switch rule.kind {
            case .runOn, .notOn:
                let bad = members[r].filter { v in
                    let on = rule.hosts.contains(model.vms[v].host)
                    return rule.kind == .runOn ? !on : on
                }
                if !bad.isEmpty { found.append(RuleViolation(rule: rule, vms: bad.map { model.vms[$0].name }, members: bad)) }
            case .antiAffinity:
                var seen: [Int: Int] = [:]
                var bad: [Int] = []
                for v in members[r] {
                    if seen[model.location[v]] != nil { bad.append(v) } else { seen[model.location[v]] = v }
                }
                if !bad.isEmpty { found.append(RuleViolation(rule: rule, vms: bad.map { model.vms[$0].name }, members: bad)) }
            case .affinity:
                if Set(members[r].map { model.location[$0] }).count > 1 { found.append(RuleViolation(rule: rule, vms: names, members: members[r])) }
            }
        }
        return found
    }
}

/// A rule the current placement breaks, and the VMs that break it (for anti-affinity, the ones
/// sharing a host with an earlier member; for VM-host rules, the ones on the wrong host).
public struct RuleViolation: Sendable, Hashable {
    public var rule: PlacementRule
    public var vms: [String]
    /// The same VMs as indices of the model that found them.
    var members: [Int] = []

    public static func == (a: Self, b: Self) -> Bool { a.rule == b.rule && a.vms == b.vms }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(rule)
        hasher.combine(vms)
    }
}
