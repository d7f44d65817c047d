/// The control methods of host health and schedules (Protocol.md §7, §11, §12): `host.health`,
/// `schedule.add`, `schedule.list`, `schedule.remove`, `schedule.history`.
public enum OperationsTypes {
    /// `host.health`: set a host's operator state, set the mesh's policy, or show a host's health.
    public struct Health: Codable, Sendable, ControlParameters {
        public enum Action: String, Codable, Sendable { case set, status, policy }
        public var action: Action
        /// Host id; nil: the agent's own host.
        public var host: String?
        /// With `set`: "healthy", "degraded" or "failing".
        public var state: String?
        /// With `set`: why (shown everywhere the state is).
        public var reason: String?
        /// With `policy`: "off", "evacuate-when-failing", "evacuate-when-degraded"; nil shows it.
        public var policy: String?

        public init(action: Action, host: String? = nil, state: String? = nil, reason: String? = nil, policy: String? = nil) {
            self.action = action
            self.host = host
            self.state = state
            self.reason = reason
            self.policy = policy
        }

        public func validate() throws(ControlError) {
            if let host { try ControlParameter.nonEmpty("host", host, expected: "a host id (`hostmesh members`)") }
            if action == .set {
                guard let state, ["healthy", "degraded", "failing"].contains(state) else {
                    throw ControlError.badRequest("state must be healthy, degraded or failing (got \(state ?? "nothing"))")
                }
                if state != "healthy" {
                    guard let reason, !reason.allSatisfy(\.isWhitespace) else {
                        throw ControlError.badRequest("setting a host \(state) needs --reason: it is shown to every operator and in the host's gossiped health")
                    }
                    guard reason.utf8.count <= 80 else { throw ControlError.badRequest("the reason is \(reason.utf8.count) bytes: give at most 80") }
                }
            }
            if action == .policy, let policy, !["off", "evacuate-when-failing", "evacuate-when-degraded"].contains(policy) {
                throw ControlError.badRequest("policy must be off, evacuate-when-failing or evacuate-when-degraded (got \(policy))")
            }
        }
    }

    /// A host's health as this agent knows it.
    public struct HealthStatus: Codable, Sendable, Equatable {
        public var host: String
        /// "healthy", "degraded", "failing" (what the host gossips), or "unknown".
        public var state: String
        /// Worst first.
        public var reasons: [String]
        /// The operator's mark ("degraded: disk replacement"), if any.
        public var operatorMark: String?
        /// The mesh's policy, and whether it evacuates this host now.
        public var policy: String
        public var evacuating: Bool
        /// This host's latest measurements (only when asked of the host itself), by name.
        public var measurements: [String: Double]?

        public init(host: String, state: String, reasons: [String], operatorMark: String?, policy: String, evacuating: Bool, measurements: [String: Double]?) {
            self.host = host
            self.state = state
            self.reasons = reasons
            self.operatorMark = operatorMark
            self.policy = policy
            self.evacuating = evacuating
            self.measurements = measurements
        }
    }

    /// `schedule.add`: `at` and `every` as typed (`ScheduleTime`); exactly one of `vm` and `maintenanceHost`.
    public struct AddSchedule: Codable, Sendable, ControlParameters {
        public var at: String
        public var every: String?
        /// migrate VM ...
        public var vm: String?
        /// --to HOST; nil with `vm`: --auto.
        public var to: String?
        /// host maintenance enter HOST
        public var maintenanceHost: String?

        public init(at: String, every: String? = nil, vm: String? = nil, to: String? = nil, maintenanceHost: String? = nil) {
            self.at = at
            self.every = every
            self.vm = vm
            self.to = to
            self.maintenanceHost = maintenanceHost
        }

        public func validate() throws(ControlError) {
            guard (vm == nil) != (maintenanceHost == nil) else {
                throw ControlError.badRequest("a schedule runs one command: `-- migrate VM (--to HOST|--auto)` or `-- host maintenance enter HOST`")
            }
            if let vm { try ControlParameter.nonEmpty("vm", vm) }
            if let to { try ControlParameter.nonEmpty("to", to, expected: "a host id (`hostmesh members`)") }
            if let maintenanceHost { try ControlParameter.nonEmpty("host", maintenanceHost, expected: "a host id (`hostmesh members`)") }
        }
    }

    public struct RemoveSchedule: Codable, Sendable, ControlParameters {
        public var id: String
        public init(id: String) { self.id = id }
        public func validate() throws(ControlError) { try ControlParameter.nonEmpty("id", id, expected: "a schedule id (`hostmesh schedule list`)") }
    }

    /// `schedule.history`: one schedule's outcomes, or every schedule's with nil.
    public struct History: Codable, Sendable, ControlParameters {
        public var id: String?
        public init(id: String? = nil) { self.id = id }
        public func validate() throws(ControlError) {}
    }

    /// One schedule as `schedule list` shows it.
    public struct ScheduleRow: Codable, Sendable, Equatable {
        public var id: String
        /// The command, as typed after `--`.
        public var command: String
        /// First time (UTC, ISO 8601) and interval in seconds (nil: once).
        public var at: String
        public var everySeconds: Int64?
        public var next: String?
        /// "done at ... by h2", "failed: ...", "pending (due ...)", "missed", or nil (never ran).
        public var last: String?
        public var createdBy: String

        public init(id: String, command: String, at: String, everySeconds: Int64?, next: String?, last: String?, createdBy: String) {
            self.id = id
            self.command = command
            self.at = at
            self.everySeconds = everySeconds
            self.next = next
            self.last = last
            self.createdBy = createdBy
        }
    }

    /// One occurrence's outcome.
    public struct OccurrenceRow: Codable, Sendable, Equatable {
        public var schedule: String
        /// `<schedule id>#<index>`.
        public var occurrence: String
        /// When it was due (UTC).
        public var due: String
        /// "done", "failed", "missed", "skipped", "interrupted".
        public var outcome: String
        public var detail: String
        public var executor: String

        public init(schedule: String, occurrence: String, due: String, outcome: String, detail: String, executor: String) {
            self.schedule = schedule
            self.occurrence = occurrence
            self.due = due
            self.outcome = outcome
            self.detail = detail
            self.executor = executor
        }
    }
}
