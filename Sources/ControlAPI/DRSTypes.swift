public import Placement

/// Parameters and results of the DRS, rule and maintenance methods (Protocol.md §7, §10).
public enum DRSTypes {
    /// `drs.set`: change the mesh-wide settings (replicated to every agent); a field left out
    /// keeps its value.
    public struct Set: Codable, Sendable, ControlParameters {
        /// manual, partial or full.
        public var automation: DRSSettings.Automation?
        /// Migration threshold 1-5.
        public var threshold: Int?

        public init(automation: DRSSettings.Automation? = nil, threshold: Int? = nil) {
            self.automation = automation
            self.threshold = threshold
        }

        public func validate() throws(ControlError) {
            guard automation != nil || threshold != nil else { throw .badRequest("drs.set changes nothing: give automation and/or threshold") }
            if let threshold { try ControlParameter.check("threshold", threshold, in: 1...5) }
        }
    }

    /// One host's load in `drs.status`.
    public struct HostLoad: Codable, Sendable, Equatable {
        public var host: String
        /// Entitlement ÷ capacity of the scarcer resource (1 = full).
        public var load: Double
        public var vms: Int
        /// available, evacuating (maintenance) or why it takes nothing.
        public var state: String

        public init(host: String, load: Double, vms: Int, state: String) {
            self.host = host
            self.load = load
            self.vms = vms
            self.state = state
        }
    }

    /// `drs.status`: the settings and the mesh as this agent sees it.
    public struct Status: Codable, Sendable, Equatable {
        public var automation: DRSSettings.Automation
        public var threshold: Int
        /// Seconds between balancing rounds.
        public var intervalSeconds: Double
        /// Standard deviation of the loads of the hosts that take VMs, and the threshold's target.
        public var imbalance: Double
        public var target: Double
        public var hosts: [HostLoad]
        /// Moves this agent started, and when its last round ran (unix seconds; nil: none yet).
        public var movesStarted: Int
        public var lastRound: Double?

        public init(automation: DRSSettings.Automation, threshold: Int, intervalSeconds: Double, imbalance: Double, target: Double,
                    hosts: [HostLoad], movesStarted: Int, lastRound: Double?) {
            self.automation = automation
            self.threshold = threshold
            self.intervalSeconds = intervalSeconds
            self.imbalance = imbalance
            self.target = target
            self.hosts = hosts
            self.movesStarted = movesStarted
            self.lastRound = lastRound
        }
    }

    /// A VM as DRS sees it on some host of the mesh (`drs.vms`): what the dashboard shows per host.
    public struct MeshVM: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        /// The host that runs it.
        public var host: String
        public var memoryMiB: Int
        /// CPU demand, thousandths of a core.
        public var cpuDemandMilli: Int
        /// False when a rule or its state keeps it where it is; `busy` while it migrates.
        public var movable: Bool
        public var busy: Bool
        /// Paused in place (§10.2's `paused`): nothing moves it. Nil from an agent before it.
        public var paused: Bool?

        public init(id: String, name: String, host: String, memoryMiB: Int, cpuDemandMilli: Int, movable: Bool, busy: Bool, paused: Bool? = nil) {
            self.id = id
            self.name = name
            self.host = host
            self.memoryMiB = memoryMiB
            self.cpuDemandMilli = cpuDemandMilli
            self.movable = movable
            self.busy = busy
            self.paused = paused
        }
    }

    /// A move DRS proposes (`drs.recommendations`).
    public struct Recommendation: Codable, Sendable, Equatable {
        /// Short id for `drs apply` (a hash of VM, source and destination).
        public var id: String
        public var vm: String
        public var vmName: String
        public var from: String
        public var to: String
        /// "balance", "host in maintenance", "keeps rule NAME".
        public var reason: String
        public var imbalanceBefore: Double
        public var imbalanceAfter: Double

        public init(id: String, vm: String, vmName: String, from: String, to: String, reason: String, imbalanceBefore: Double, imbalanceAfter: Double) {
            self.id = id
            self.vm = vm
            self.vmName = vmName
            self.from = from
            self.to = to
            self.reason = reason
            self.imbalanceBefore = imbalanceBefore
            self.imbalanceAfter = imbalanceAfter
        }
    }

    /// `drs.apply`: run one recommendation (on the agent that owns its VM).
    public struct Apply: Codable, Sendable, ControlParameters {
        public var id: String
        public init(id: String) { self.id = id }
        public func validate() throws(ControlError) { try ControlParameter.nonEmpty("id", id, expected: "an id from `hostmesh drs recommendations`") }
    }

    /// `rule.add`: a rule, replicated to every agent (a rule of the same name is replaced).
    public struct AddRule: Codable, Sendable, ControlParameters {
        public var rule: PlacementRule
        /// Accept VM names no host reports yet (a rule for VMs still to be created, which
        /// initial placement then follows). Default false: an unknown VM is refused as a typo.
        public var allowUnknownVMs: Bool?
        public init(rule: PlacementRule, allowUnknownVMs: Bool? = nil) {
            self.rule = rule
            self.allowUnknownVMs = allowUnknownVMs
        }
        public func validate() throws(ControlError) {
            do { try rule.validate() } catch { throw .badRequest(error.description) }
        }
    }

    /// `rule.remove`: which rule (by name).
    public struct RemoveRule: Codable, Sendable, ControlParameters {
        public var name: String
        public init(name: String) { self.name = name }
        public func validate() throws(ControlError) { try ControlParameter.nonEmpty("name", name, expected: "a rule name (`hostmesh rule list`)") }
    }

    /// A rule in `rule.list`, with who last wrote it.
    public struct RuleRow: Codable, Sendable, Equatable {
        public var rule: PlacementRule
        public var version: UInt64
        public var writer: String
        /// VMs that break it now (as this agent sees the mesh).
        public var brokenBy: [String]

        public init(rule: PlacementRule, version: UInt64, writer: String, brokenBy: [String]) {
            self.rule = rule
            self.version = version
            self.writer = writer
            self.brokenBy = brokenBy
        }
    }

    /// `host.maintenance`: enter, exit or show a host's maintenance.
    public struct Maintenance: Codable, Sendable, ControlParameters {
        public enum Action: String, Codable, Sendable { case enter, exit, status }
        public var action: Action
        /// Host id; nil: the agent's own host.
        public var host: String?

        public init(action: Action, host: String? = nil) {
            self.action = action
            self.host = host
        }

        public func validate() throws(ControlError) {
            if let host { try ControlParameter.nonEmpty("host", host, expected: "a host id (`hostmesh members`)") }
        }
    }

    /// A VM that cannot leave a host in maintenance, and why.
    public struct Blocked: Codable, Sendable, Equatable {
        public var vm: String
        public var reason: String
        public init(vm: String, reason: String) {
            self.vm = vm
            self.reason = reason
        }
    }

    /// A host's maintenance as this agent sees it.
    public struct MaintenanceStatus: Codable, Sendable, Equatable {
        public var host: String
        /// "in service", "evacuating", "ready for maintenance".
        public var state: String
        /// Unix seconds of `enter`; nil in service.
        public var since: Int64?
        /// VMs still on the host (names), those migrating now, and those that cannot go anywhere.
        public var remaining: [String]
        public var moving: [String]
        public var blocked: [Blocked]

        public init(host: String, state: String, since: Int64?, remaining: [String], moving: [String], blocked: [Blocked]) {
            self.host = host
            self.state = state
            self.since = since
            self.remaining = remaining
            self.moving = moving
            self.blocked = blocked
        }
    }
}

extension DRSTypes {
    /// `vm.place`: define (and optionally start) a VM on the best host of the mesh, which may
    /// not be the host the command runs on (initial placement, Protocol.md §10.6).
    public struct Place: Codable, Sendable, ControlParameters {
        public var create: ControlTypes.CreateVM
        public init(create: ControlTypes.CreateVM) { self.create = create }
        public func validate() throws(ControlError) { try create.validate() }
    }

    /// Where `vm.place` (or `vm.startPlaced`) put the VM, and the hosts it ranked (best first).
    public struct Placed: Codable, Sendable {
        public var host: String
        public var info: VMInfo
        public var ranking: [String]
        /// Why this host: its score, and why better-ranked hosts did not take the VM (absent from
        /// agents that predate it).
        public var reason: String?
        public init(host: String, info: VMInfo, ranking: [String], reason: String? = nil) {
            self.host = host
            self.info = info
            self.ranking = ranking
            self.reason = reason
        }
    }
}
