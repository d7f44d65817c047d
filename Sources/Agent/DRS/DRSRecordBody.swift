import Foundation
import HostHealth
import MeshIdentity
import MeshWire
import Placement
import Schedules

/// What a replicated DRS record holds (Protocol.md §10.3, §11, §12), keyed `rule/<name>`,
/// `settings`, `maintenance/<host id>`, `health/<host id>`, `health-policy`, `schedule/<id>` or
/// `schedule-runs/<id>` or `pool/<name>`.
enum DRSRecordBody: Sendable, Hashable {
    case rule(PlacementRule)
    case settings(DRSSettings)
    case maintenance(MaintenanceRequest)
    case health(HealthMark)
    case healthPolicy(HealthPolicy)
    case schedule(Schedule)
    case scheduleRuns(ScheduleRuns)
    case pool(ResourcePool)

    static func ruleKey(_ name: String) -> String { "rule/" + name }
    static let settingsKey = "settings"
    static func maintenanceKey(_ host: String) -> String { "maintenance/" + host }
    static func healthKey(_ host: String) -> String { "health/" + host }
    static let healthPolicyKey = "health-policy"
    static func scheduleKey(_ id: String) -> String { "schedule/" + id }
    static func scheduleRunsKey(_ id: String) -> String { "schedule-runs/" + id }
    static func poolKey(_ name: String) -> String { "pool/" + name }
}

/// A host's health as an operator set it (`hostmesh host health set`).
struct HealthMark: Sendable, Hashable {
    var state: HealthState
    var reason: String
    var since: Int64
}

/// A host's maintenance as written by `hostmesh host maintenance enter|exit`.
struct MaintenanceRequest: Sendable, Hashable {
    /// True from `enter` to `exit`.
    var active: Bool
    /// Unix seconds of the request (for display).
    var since: Int64
}

typealias DRSRecord = ReplicatedRecords<DRSRecordBody>.Record

/// The protobuf form of records (wire and store alike).
enum DRSRecordCoding {
    static func wire(_ record: DRSRecord) -> Hostmesh_V1_DrsRecord {
        var out = Hostmesh_V1_DrsRecord()
        out.key = record.key
        out.version = record.version
        out.writer = record.writer
        switch record.body {
        case nil:
            out.deleted = true
        case .rule(let rule)?:
            var r = Hostmesh_V1_DrsRule()
            r.name = rule.name
            r.kind = rule.kind.rawValue
            r.vms = rule.vms
            r.hosts = rule.hosts
            r.must = rule.must
            out.rule = r
        case .settings(let settings)?:
            var s = Hostmesh_V1_DrsSettings()
            s.automation = settings.automation.rawValue
            s.threshold = UInt32(settings.threshold)
            out.settings = s
        case .maintenance(let request)?:
            var m = Hostmesh_V1_DrsMaintenance()
            m.active = request.active
            m.sinceUnix = request.since
            out.maintenance = m
        case .health(let mark)?:
            var h = Hostmesh_V1_DrsHealthMark()
            h.state = mark.state.rawValue
            h.reason = mark.reason
            h.sinceUnix = mark.since
            out.health = h
        case .healthPolicy(let policy)?:
            var p = Hostmesh_V1_DrsHealthPolicy()
            p.policy = policy.rawValue
            out.healthPolicy = p
        case .schedule(let schedule)?:
            out.schedule = ScheduleCoding.wire(schedule)
        case .scheduleRuns(let runs)?:
            out.scheduleRuns = ScheduleCoding.wire(runs)
        case .pool(let pool)?:
            var p = Hostmesh_V1_DrsPool()
            p.name = pool.name
            p.cpu = wire(pool.cpu)
            p.memory = wire(pool.memory)
            out.pool = p
        }
        return out
    }

    /// A received record, or nil (ignored) when it does not make sense: an unknown kind, a body
    /// that does not match its key, a setting out of range. A newer agent's record kinds are
    /// thus skipped, not misread.
    static func record(_ wire: Hostmesh_V1_DrsRecord) -> DRSRecord? {
        // A version past Int64's range is none SQLite orders like this host (it stores the bits
        // as a signed integer), and one at the top leaves no room for the next write.
        guard !wire.key.isEmpty, wire.version > 0, wire.version < UInt64(Int64.max) else { return nil }
        // A writer is a host id: ASCII, so Swift's order of writers is SQLite's byte order
        // (a row is replaced only by a record that supersedes it, compared there).
        guard (try? IdentityName.validate(wire.writer)) != nil else { return nil }
        let body: DRSRecordBody?
        if wire.deleted {
            body = nil
        } else {
            switch wire.body {
            case .rule(let r)?:
                guard let kind = PlacementRule.Kind(rawValue: r.kind), wire.key == DRSRecordBody.ruleKey(r.name) else { return nil }
                let rule = PlacementRule(name: r.name, kind: kind, vms: r.vms, hosts: r.hosts, must: r.must)
                guard (try? rule.validate()) != nil else { return nil } // a rule that cannot mean anything is not applied
                body = .rule(rule)
            case .settings(let s)?:
                guard wire.key == DRSRecordBody.settingsKey, let automation = DRSSettings.Automation(rawValue: s.automation),
                      (1...5).contains(s.threshold) else { return nil }
                body = .settings(DRSSettings(automation: automation, threshold: Int(s.threshold)))
            case .maintenance(let m)?:
                guard wire.key.hasPrefix("maintenance/") else { return nil }
                body = .maintenance(MaintenanceRequest(active: m.active, since: m.sinceUnix))
            case .health(let h)?:
                guard wire.key.hasPrefix("health/"), let state = HealthState(rawValue: h.state) else { return nil }
                body = .health(HealthMark(state: state, reason: h.reason, since: h.sinceUnix))
            case .healthPolicy(let p)?:
                guard wire.key == DRSRecordBody.healthPolicyKey, let policy = HealthPolicy(rawValue: p.policy) else { return nil }
                body = .healthPolicy(policy)
            case .schedule(let s)?:
                guard let schedule = ScheduleCoding.schedule(s), wire.key == DRSRecordBody.scheduleKey(schedule.id) else { return nil }
                body = .schedule(schedule)
            case .scheduleRuns(let r)?:
                guard wire.key.hasPrefix("schedule-runs/"), let runs = ScheduleCoding.runs(r) else { return nil }
                body = .scheduleRuns(runs)
            case .pool(let p)?:
                let pool = ResourcePool(name: p.name, cpu: allocation(p.cpu), memory: allocation(p.memory))
                // A pool that cannot mean anything (a limit below its reservation, a bad name) is not applied.
                guard wire.key == DRSRecordBody.poolKey(p.name), (try? pool.validate()) != nil else { return nil }
                body = .pool(pool)
            case nil:
                return nil
            }
        }
        return DRSRecord(key: wire.key, version: wire.version, writer: wire.writer, body: body)
    }

    /// An allocation on the wire: limit 0 is none, shares 0 are normal.
    static func wire(_ allocation: ResourceAllocation) -> Hostmesh_V1_DrsAllocation {
        var out = Hostmesh_V1_DrsAllocation()
        out.reservation = UInt64(max(0, allocation.reservation))
        out.limit = UInt64(max(0, allocation.limit ?? 0))
        out.shares = UInt32(max(0, allocation.shares))
        return out
    }

    static func allocation(_ wire: Hostmesh_V1_DrsAllocation) -> ResourceAllocation {
        ResourceAllocation(reservation: Int(clamping: wire.reservation), limit: wire.limit == 0 ? nil : Int(clamping: wire.limit),
                           shares: wire.shares == 0 ? ResourceAllocation.normalShares : Int(wire.shares))
    }
}
