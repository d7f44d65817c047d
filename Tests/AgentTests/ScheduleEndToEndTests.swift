import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Scheduled operations (issue 15 item 3, Protocol.md §12) with real agents, QEMU and the test
/// guest: a migration scheduled on a fires while a is dead, run once by the VM's owner; a
/// maintenance scheduled for a host that is down past the grace period is recorded missed when
/// it returns, and not run; bad schedules are refused with their reason.
extension DRSEndToEndTests {
    @Test func aScheduleFiresWhileItsCreatorIsDeadExactlyOnce() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let args = Self.drs + ["--schedule-grace", "8"]
        let a = try await mesh.start("node-a", arguments: args)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + args)
        var c = try await mesh.start("node-c", arguments: ["--join", a.address] + args)
        let d = try await mesh.start("node-d", arguments: ["--join", a.address] + args)
        // The mesh has converged before anything is scheduled (b must know d to move s1 there).
        var views: [String: [String]] = [:]
        try await Self.waitUntil(15, "every agent sees the four alive", log: "\(views)") {
            for agent in [a, b, c, d] {
                let rows = try await agent.control.call("members", Empty(), as: [MemberRow].self)
                views[agent.hostID] = rows.map { "\($0.host) \($0.status)" }
            }
            return views.values.allSatisfy { $0.filter { $0.hasSuffix(" alive") }.count == 4 }
        }
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("s1"), start: true), as: VMInfo.self)
        try await Self.waitForVMs(a, 1)

        // Refused: a time in the past, an unreadable time, a short interval, an unknown VM or host.
        let refusals: [(OperationsTypes.AddSchedule, String)] = [
            (.init(at: "2020-01-01T00:00:00Z", vm: "s1", to: "node-c"), "in the past"),
            (.init(at: "next tuesday", vm: "s1", to: "node-c"), "cannot read the time"),
            (.init(at: "+1h", every: "10s", vm: "s1", to: "node-c"), "below the minimum of 60 s"),
            (.init(at: "+1h", vm: "nosuch", to: "node-c"), "no host reports a VM named nosuch"),
            (.init(at: "+1h", vm: "s1", to: "node-z"), "no member has host id node-z"),
            (.init(at: "+1h", maintenanceHost: "node-z"), "no member has host id node-z"),
        ]
        for (params, expected) in refusals {
            await #expect { _ = try await a.control.call("schedule.add", params, as: OperationsTypes.ScheduleRow.self) }
                throws: { "\($0)".contains(expected) }
        }

        // Created on a, 20 s ahead (time for both to replicate and for c to be killed before its
        // own occurrence, on a loaded machine too); a second one on the same VM is refused.
        let migrate = try await a.control.call("schedule.add", OperationsTypes.AddSchedule(at: "+20s", vm: "s1", to: "node-d"), as: OperationsTypes.ScheduleRow.self)
        await #expect { _ = try await a.control.call("schedule.add", OperationsTypes.AddSchedule(at: "+40s", vm: "s1", to: "node-c"), as: OperationsTypes.ScheduleRow.self) }
            throws: { "\($0)".contains("already acts on vm s1") }
        // And maintenance for c at the same time: c will be down then, until past the grace period.
        let maintenance = try await a.control.call("schedule.add", OperationsTypes.AddSchedule(at: "+20s", maintenanceHost: "node-c"), as: OperationsTypes.ScheduleRow.self)
        let maintenanceAdded = ContinuousClock.now
        try await Self.waitUntil(15, "every agent holds both schedules") {
            for agent in [b, c, d] where try await agent.control.call("schedule.list", Empty(), as: [OperationsTypes.ScheduleRow].self).count != 2 { return false }
            return true
        }
        a.kill()
        c.kill()

        // b, the VM's owner at that moment, runs the migration while its creator is dead; d, which
        // holds the VM after its time, does not run it again.
        do {
            try await Self.waitUntil(60, "s1 on d", log: Self.scheduleLog([b, d])) { try await Self.placement([b, d])["s1"] == "node-d" }
        } catch {
            // What the executor recorded says why (a refusal, a failed migration, a skip).
            let history = try? await b.control.call("schedule.history", OperationsTypes.History(id: migrate.id), as: [OperationsTypes.OccurrenceRow].self)
            let members = try? await b.control.call("members", Empty(), as: [MemberRow].self)
            let aboutD = b.log.split(separator: "\n").filter { $0.contains("node-d") && !$0.contains("update not delivered") }.suffix(30)
            Issue.record("b's record of the occurrence: \(String(describing: history))\nb's members: \(String(describing: members))\nb's log about d:\n\(aboutD.joined(separator: "\n"))")
            throw error
        }
        try await Self.waitUntil(15, "the outcome replicated to d") {
            try await d.control.call("schedule.history", OperationsTypes.History(id: migrate.id), as: [OperationsTypes.OccurrenceRow].self).count == 1
        }
        try await Task.sleep(for: .seconds(3))
        for agent in [b, d] {
            let history = try await agent.control.call("schedule.history", OperationsTypes.History(id: migrate.id), as: [OperationsTypes.OccurrenceRow].self)
            #expect(history.count == 1 && history[0].outcome == "done" && history[0].executor == "node-b" && history[0].occurrence == "\(migrate.id)#0",
                    "\(agent.hostID): \(history)")
        }
        #expect(try await Self.moves([b, d]) == ["s1": 1])
        let list = try await d.control.call("schedule.list", Empty(), as: [OperationsTypes.ScheduleRow].self)
        #expect(list.first { $0.id == migrate.id }?.last?.hasPrefix("done") == true, "\(list)")

        // c comes back past its occurrence's grace period: recorded missed, not run.
        let overdue = maintenanceAdded + .seconds(20 + 8 + 3)
        if ContinuousClock.now < overdue { try await Task.sleep(until: overdue) }
        c = try await mesh.restart(c, arguments: ["--join", b.address] + args)
        try await Self.waitUntil(30, "the missed maintenance recorded", log: Self.drsLog([b, c, d])) {
            let history = try await d.control.call("schedule.history", OperationsTypes.History(id: maintenance.id), as: [OperationsTypes.OccurrenceRow].self)
            return history.count == 1 && history[0].outcome == "missed" && history[0].executor == "node-c"
        }
        let status = try await c.control.call("host.maintenance", DRSTypes.Maintenance(action: .status), as: DRSTypes.MaintenanceStatus.self)
        #expect(status.state == "in service")

        // Removed from any agent, everywhere.
        _ = try await d.control.call("schedule.remove", OperationsTypes.RemoveSchedule(id: maintenance.id), as: ControlTypes.Text.self)
        try await Self.waitUntil(15, "the removal replicated") {
            try await b.control.call("schedule.list", Empty(), as: [OperationsTypes.ScheduleRow].self).map(\.id) == [migrate.id]
        }
    }

    /// The schedule, migration and DRS lines of the agents' logs, for failure messages.
    static func scheduleLog(_ agents: [AgentProcess]) -> Substring {
        Substring(agents.map { agent in
            agent.log.split(separator: "\n").filter { line in ["schedule", "migrat", "DRS", "error"].contains { line.contains($0) } }
                .filter { !$0.contains("update not delivered") && !$0.contains("push-pull failed") }
                .suffix(40).joined(separator: "\n")
        }.joined(separator: "\n"))
    }
}
