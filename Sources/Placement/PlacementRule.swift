/// A placement rule (VMware DRS's VM-VM and VM-host rules), replicated to every agent
/// (Protocol.md §10.3). VMs are named by name or id; hosts by host id.
public struct PlacementRule: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// The VMs run on one host.
        case affinity
        /// No two of the VMs run on one host.
        case antiAffinity = "anti-affinity"
        /// The VMs run only on the listed hosts.
        case runOn = "run-on"
        /// The VMs never run on the listed hosts.
        case notOn = "not-on"
    }

    /// Unique name (the replication key).
    public var name: String
    public var kind: Kind
    /// VM names or ids.
    public var vms: [String]
    /// Host ids, for run-on and not-on; empty otherwise.
    public var hosts: [String]
    /// "must" (never broken by placement, balancing or maintenance) rather than "should"
    /// (kept unless a mandatory move has nowhere else to go).
    public var must: Bool

    public init(name: String, kind: Kind, vms: [String], hosts: [String] = [], must: Bool) {
        self.name = name
        self.kind = kind
        self.vms = vms
        self.hosts = hosts
        self.must = must
    }

    /// "must" or "should".
    public var strength: String { must ? "must" : "should" }

    /// Whether the rule names `vm` (by name or id).
    public func names(_ vm: PlacementVM) -> Bool { vms.contains(vm.name) || vms.contains(vm.id) }

    /// A rule that cannot mean anything: refused when written, with the reason.
    public func validate() throws(PlacementError) {
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw .badRule("rule name \"\(name)\" must be 1-64 letters, digits, '-', '_' or '.'")
        }
        guard Set(vms).count == vms.count else { throw .badRule("rule \(name) names a VM twice") }
        switch kind {
        case .affinity, .antiAffinity:
            guard vms.count >= 2 else { throw .badRule("\(kind.rawValue) rule \(name) needs at least two VMs (it names \(vms.count))") }
            guard hosts.isEmpty else { throw .badRule("\(kind.rawValue) rule \(name) takes no hosts: use run-on or not-on for VM-host rules") }
        case .runOn, .notOn:
            guard !vms.isEmpty else { throw .badRule("\(kind.rawValue) rule \(name) names no VM") }
            guard !hosts.isEmpty else { throw .badRule("\(kind.rawValue) rule \(name) names no host (give --host, repeatable)") }
        }
    }
}
