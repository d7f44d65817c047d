import ControlAPI
import Foundation
import MeshCrypto
import Placement
import Schedules

/// `schedule.add`, `schedule.list`, `schedule.remove`, `schedule.history` (Protocol.md §7, §12):
/// schedules are written from any agent into the replicated record set, after the checks of
/// §12.2 (time, interval, the object exists, no other schedule on it at that time, no "must"
/// rule broken now).
struct ScheduleControlHandler: Sendable {
    let controller: DRSController
    let rules: ScheduleBook.Rules

    static let methods: Set<String> = ["schedule.add", "schedule.list", "schedule.remove", "schedule.history"]

    func handle(_ request: ControlRequest) async throws -> any Encodable & Sendable {
        let now = Int64(Date().timeIntervalSince1970)
        switch request.method {
        case "schedule.add":
            let p = try request.params(OperationsTypes.AddSchedule.self)
            guard let at = ScheduleTime.parse(p.at, nowUnix: now) else {
                throw ControlError.badRequest("cannot read the time \"\(p.at)\": give UTC as 2026-12-05T22:00:00Z (or 2026-12-05 22:00), +90s / +30m / +2h / +1d, or @<unix seconds>")
            }
            var every: Int64?
            if let text = p.every {
                guard let seconds = ScheduleTime.interval(text), seconds > 0 else {
                    throw ControlError.badRequest("cannot read the interval \"\(text)\": give a number with s, m, h or d (`--every 1d`)")
                }
                every = seconds
            }
            let action = try await action(p)
            let schedule = Schedule(id: Self.newID(), atUnix: at, everySeconds: every, action: action, createdBy: controller.hostID, createdAtUnix: now)
            do { try ScheduleBook.validate(schedule, existing: await controller.schedules, nowUnix: now, rules: rules) } catch {
                switch error {
                case .conflict: throw ControlError.conflict(error.description)
                default: throw ControlError.badRequest(error.description)
                }
            }
            try await controller.write(DRSRecordBody.scheduleKey(schedule.id), .schedule(schedule))
            return try await rows(now: now).first { $0.id == schedule.id }!
        case "schedule.list":
            return try await rows(now: now)
        case "schedule.remove":
            let p = try request.params(OperationsTypes.RemoveSchedule.self)
            guard await controller.schedules.contains(where: { $0.id == p.id }) else {
                throw ControlError.notFound("no schedule has id \(p.id): `hostmesh schedule list` shows them")
            }
            try await controller.write(DRSRecordBody.scheduleKey(p.id), nil)
            return ControlTypes.Text(text: "schedule \(p.id) removed (replicated to every agent); an occurrence already under way finishes")
        case "schedule.history":
            let p = try request.params(OperationsTypes.History.self)
            let schedules = await controller.schedules
            let runs = await controller.scheduleRuns
            if let id = p.id, runs[id] == nil, !schedules.contains(where: { $0.id == id }) {
                throw ControlError.notFound("no schedule has id \(id): `hostmesh schedule list` shows them")
            }
            var out: [OperationsTypes.OccurrenceRow] = []
            for (id, r) in runs.sorted(by: { $0.key < $1.key }) where p.id == nil || p.id == id {
                let schedule = schedules.first { $0.id == id }
                for result in r.recent {
                    out.append(OperationsTypes.OccurrenceRow(schedule: id, occurrence: "\(id)#\(result.index)",
                                                             due: schedule.map { ScheduleTime.format($0.time(of: result.index)) } ?? "?",
                                                             outcome: result.outcome.rawValue, detail: result.detail, executor: result.executor))
                }
            }
            return out
        default:
            throw ControlError.badRequest("unknown method \"\(request.method)\"")
        }
    }

    /// The action, once its VM or host is known and (for a migration to a named host, or an
    /// evacuation) no "must" rule would break now.
    private func action(_ p: OperationsTypes.AddSchedule) async throws -> ScheduledAction {
        let (_, view) = await controller.decide()
        let hosts = Set(view.hosts.map(\.id))
        if let host = p.maintenanceHost {
            guard hosts.contains(host) else { throw ControlError.notFound("no member has host id \(host): `hostmesh members` lists them") }
            var evacuating = view
            for i in evacuating.hosts.indices where evacuating.hosts[i].id == host { evacuating.hosts[i].availability = .evacuating }
            let plan = Placement.plan(evacuating, tolerance: BalanceTolerance(threshold: 1), maxMoves: evacuating.vms.count)
            let broken = plan.unplaced.filter { $0.host == host && $0.reason.contains("must rule") }
            if !broken.isEmpty {
                throw ControlError.conflict("evacuating \(host) now would break a must rule: "
                    + broken.map { "\($0.vmName): \($0.reason)" }.joined(separator: "; ") + ". Change the rule (`hostmesh rule list`) first")
            }
            return .enterMaintenance(host: host)
        }
        let vm = p.vm! // validate(): exactly one of vm and maintenanceHost
        guard let placed = view.vms.first(where: { $0.name == vm || $0.id == vm }) else {
            throw ControlError.notFound("no host reports a VM named \(vm): check the name (`hostmesh vm list` on its host, `hostmesh drs status`)")
        }
        if let to = p.to {
            guard hosts.contains(to) else { throw ControlError.notFound("no member has host id \(to): `hostmesh members` lists them") }
            var moved = view
            for i in moved.vms.indices where moved.vms[i].id == placed.id { moved.vms[i].host = to }
            let before = Set(Placement.violations(view).filter(\.rule.must).map(\.rule.name))
            if let rule = Placement.violations(moved).first(where: { $0.rule.must && !before.contains($0.rule.name) }) {
                throw ControlError.conflict("moving \(vm) to \(to) would break must rule \(rule.rule.name) (\(rule.rule.kind.rawValue)): choose another host or --auto")
            }
        }
        return .migrate(vm: placed.name, to: p.to)
    }

    private func rows(now: Int64) async throws -> [OperationsTypes.ScheduleRow] {
        let runs = await controller.scheduleRuns
        return await controller.schedules.map { s in
            let summary = ScheduleBook.summary(s, runs: runs[s.id], nowUnix: now, rules: rules)
            var last = summary.last.map { "\($0.outcome.rawValue) (#\($0.index) by \($0.executor))" + ($0.detail.isEmpty ? "" : ": \($0.detail)") }
            if let overdue = summary.overdue {
                last = "#\(overdue.index) \(overdue.state)" + (overdue.state == "missed" ? " (no executor ran it within \(rules.grace) s)" : "")
            }
            return OperationsTypes.ScheduleRow(id: s.id, command: s.action.description, at: ScheduleTime.format(s.atUnix), everySeconds: s.everySeconds,
                                               next: summary.nextUnix.map(ScheduleTime.format), last: last, createdBy: s.createdBy)
        }
    }

    /// 8 hex digits.
    static func newID() -> String { Sodium.randomBytes(4).map { String(format: "%02x", $0) }.joined() }
}
