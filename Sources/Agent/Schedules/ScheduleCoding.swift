import MeshWire
import Schedules

/// Schedules and their run records in protobuf (replicated DRS records, Protocol.md §12.1, §12.3).
enum ScheduleCoding {
    static func wire(_ s: Schedule) -> Hostmesh_V1_DrsSchedule {
        var out = Hostmesh_V1_DrsSchedule()
        out.id = s.id
        out.atUnix = s.atUnix
        out.everySeconds = s.everySeconds ?? 0
        switch s.action {
        case let .migrate(vm, to):
            var m = Hostmesh_V1_DrsScheduledMigration()
            m.vm = vm
            m.to = to ?? ""
            out.migrate = m
        case let .enterMaintenance(host):
            out.maintenanceHost = host
        }
        out.createdBy = s.createdBy
        out.createdAtUnix = s.createdAtUnix
        return out
    }

    /// nil (the record is ignored) when it cannot mean anything: no id, no action, a negative
    /// interval, an empty VM or host.
    static func schedule(_ w: Hostmesh_V1_DrsSchedule) -> Schedule? {
        guard !w.id.isEmpty, w.everySeconds >= 0 else { return nil }
        let action: ScheduledAction
        switch w.action {
        case .migrate(let m)?:
            guard !m.vm.isEmpty else { return nil }
            action = .migrate(vm: m.vm, to: m.to.isEmpty ? nil : m.to)
        case .maintenanceHost(let host)?:
            guard !host.isEmpty else { return nil }
            action = .enterMaintenance(host: host)
        case nil:
            return nil
        }
        return Schedule(id: w.id, atUnix: w.atUnix, everySeconds: w.everySeconds == 0 ? nil : w.everySeconds, action: action,
                        createdBy: w.createdBy, createdAtUnix: w.createdAtUnix)
    }

    static func wire(_ r: ScheduleRuns) -> Hostmesh_V1_DrsScheduleRuns {
        var out = Hostmesh_V1_DrsScheduleRuns()
        out.lastIndex = Int64(r.lastIndex)
        out.recent = r.recent.map { result in
            var o = Hostmesh_V1_DrsOccurrenceResult()
            o.index = Int64(result.index)
            o.outcome = result.outcome.rawValue
            o.detail = result.detail
            o.executor = result.executor
            o.atUnix = result.atUnix
            return o
        }
        return out
    }

    static func runs(_ w: Hostmesh_V1_DrsScheduleRuns) -> ScheduleRuns? {
        guard w.lastIndex >= -1, w.lastIndex < Int64(Int32.max) else { return nil }
        var runs = ScheduleRuns(lastIndex: Int(w.lastIndex))
        for o in w.recent {
            guard let outcome = OccurrenceResult.Outcome(rawValue: o.outcome), o.index >= 0, o.index <= w.lastIndex else { return nil }
            runs.record(OccurrenceResult(index: Int(o.index), outcome: outcome, detail: o.detail, executor: o.executor, atUnix: o.atUnix))
        }
        runs.lastIndex = Int(w.lastIndex)
        return runs
    }
}
