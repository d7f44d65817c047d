import Foundation
import MeshWire
import Placement

/// What a replicated DRS record holds (Protocol.md §12.3), keyed `rule/<name>`, `settings` or
/// `maintenance/<host id>`.
enum DRSRecordBody: Sendable, Hashable {
    case rule(PlacementRule)
    case settings(DRSSettings)
    case maintenance(MaintenanceRequest)

    static func ruleKey(_ name: String) -> String { "rule/" + name }
    static let settingsKey = "settings"
    static func maintenanceKey(_ host: String) -> String { "maintenance/" + host }
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
        }
        return out
    }

    /// A received record, or nil (ignored) when it does not make sense: an unknown kind, a body
    /// that does not match its key, a setting out of range. A newer agent's record kinds are
    /// thus skipped, not misread.
    static func record(_ wire: Hostmesh_V1_DrsRecord) -> DRSRecord? {
        guard !wire.key.isEmpty, !wire.writer.isEmpty, wire.version > 0 else { return nil }
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
            case nil:
                return nil
            }
        }
        return DRSRecord(key: wire.key, version: wire.version, writer: wire.writer, body: body)
    }
}
