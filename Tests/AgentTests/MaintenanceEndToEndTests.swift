import Agent
import ControlAPI
import Foundation
import Hypervisor
import Placement
import Testing

/// Maintenance mode (issue 15 item 1, Protocol.md §10.7) with real agents, QEMU and the test
/// guest: entered from another agent, the host evacuates one VM at a time, keeps a must rule
/// (the VM it would break stays, named with the reason), carries on after its agent is killed
/// and restarted, takes no new VM, reports ready once empty, and exits back to service.
extension DRSEndToEndTests {
    @Test func maintenanceEvacuatesKeepsMustRulesAndCarriesOnAfterARestart() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let drs = ["--drs-interval", "3", "--drs-sync-interval", "1", "--drs-hold", "600", "--drs-max-concurrent-moves", "1"]
        var a = try await mesh.start("node-a", arguments: drs)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + drs)
        let c = try await mesh.start("node-c", arguments: ["--join", a.address] + drs)
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("db1"), start: true), as: VMInfo.self)
        _ = try await c.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("db2"), start: true), as: VMInfo.self)
        for name in ["w1", "w2", "db3"] {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec(name), start: true), as: VMInfo.self)
        }
        try await Self.waitForVMs(b, 5)
        let rule = PlacementRule(name: "dbs-apart", kind: .antiAffinity, vms: ["db1", "db2", "db3"], must: true)
        _ = try await b.control.call("rule.add", DRSTypes.AddRule(rule: rule), as: ControlTypes.Text.self)
        try await Self.waitUntil(30, "every host's loads and the rule on a", log: Self.drsLog([a, b, c])) {
            let status = try await a.control.call("drs.status", Empty(), as: DRSTypes.Status.self)
            let rules = try await a.control.call("rule.list", Empty(), as: [DRSTypes.RuleRow].self)
            return status.hosts.count == 3 && status.hosts.allSatisfy { $0.state == "available" } && rules.count == 1
        }

        // Entered from c, for a.
        let entered = try await c.control.call("host.maintenance", DRSTypes.Maintenance(action: .enter, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        #expect(entered.host == "node-a" && entered.state == "evacuating" && entered.since != nil)
        // The first VM leaves; a is killed and restarted before the evacuation is over.
        try await Self.waitUntil(60, "a first VM off a", log: Self.drsLog([a, b, c])) {
            try await Self.moves([a]).values.reduce(0, +) >= 1
        }
        a = try await mesh.restart(a, arguments: ["--join", b.address] + drs)
        // It carries on: w1 and w2 leave; db3 has nowhere to go and stays, named with the reason.
        var status = entered
        try await Self.waitUntil(90, "w1 and w2 off a, db3 blocked", log: Self.drsLog([a, b, c])) {
            status = try await b.control.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
            return status.remaining == ["db3"] && status.moving.isEmpty && !status.blocked.isEmpty
        }
        #expect(status.state == "evacuating")
        #expect(status.blocked.map(\.vm) == ["db3"] && status.blocked[0].reason.contains("would break must rule dbs-apart"), "\(status.blocked)")
        let running = try await Self.placement([a, b, c])
        #expect(running["db3"] == "node-a" && running["w1"] != "node-a" && running["w2"] != "node-a" && running.count == 5)
        #expect(running["w1"] != nil && running["w2"] != nil)

        // In maintenance, a takes no new VM, and placement from elsewhere skips it.
        await #expect { _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("late"), start: false), as: VMInfo.self) }
            throws: { "\($0)".contains("maintenance") }
        let placed = try await b.control.call("vm.place", DRSTypes.Place(create: ControlTypes.CreateVM(spec: Self.spec("late"), start: false)),
                                              as: DRSTypes.Placed.self)
        #expect(placed.host != "node-a" && !placed.ranking.contains("node-a"))

        // Without the rule db3 can go too, and a is ready for maintenance.
        _ = try await a.control.call("rule.remove", DRSTypes.RemoveRule(name: "dbs-apart"), as: ControlTypes.Text.self)
        try await Self.waitUntil(60, "a empty", log: Self.drsLog([a, b, c])) {
            status = try await c.control.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
            return status.state == "ready for maintenance"
        }
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).filter { $0.state == "running" }.isEmpty)
        let moved = try await Self.moves([a, b, c])
        #expect(moved == ["w1": 1, "w2": 1, "db3": 1], "\(moved)")

        // Exit: back in service, it takes VMs again.
        let exited = try await b.control.call("host.maintenance", DRSTypes.Maintenance(action: .exit, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        #expect(exited.state == "in service")
        try await Self.waitUntil(10, "a back in service") {
            (try? await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("after"), start: false), as: VMInfo.self)) != nil
        }
    }
}
