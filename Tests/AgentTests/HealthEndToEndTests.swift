import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Host health (issue 15 item 2, Protocol.md §11) with real agents, QEMU and the test guest: a
/// host an operator marks degraded from another agent says so in its gossip, with the reason;
/// placement never picks it; under `evacuate-when-degraded` its VMs move away (and under the
/// default policy they stay); marked healthy again it takes VMs.
extension DRSEndToEndTests {
    @Test func aDegradedHostTakesNoVMAndIsEvacuatedUnderItsPolicy() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: Self.drs)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + Self.drs)
        let c = try await mesh.start("node-c", arguments: ["--join", a.address] + Self.drs)
        for name in ["h1", "h2"] {
            _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec(name), start: true), as: VMInfo.self)
        }
        try await Self.waitForVMs(b, 2)
        // Measured: healthy, with the measurements shown.
        let own = try await a.control.call("host.health", OperationsTypes.Health(action: .status), as: OperationsTypes.HealthStatus.self)
        #expect(own.state == "healthy" && own.policy == "evacuate-when-failing", "\(own)")
        #expect(own.measurements?["journal write ms"] != nil, "\(own)")

        // Bad input is refused with the reason.
        await #expect { _ = try await b.control.call("host.health", OperationsTypes.Health(action: .set, host: "node-a", state: "degraded"),
                                                     as: OperationsTypes.HealthStatus.self) } throws: { "\($0)".contains("needs --reason") }
        await #expect { _ = try await b.control.call("host.health", OperationsTypes.Health(action: .set, host: "node-z", state: "degraded", reason: "x"),
                                                     as: OperationsTypes.HealthStatus.self) } throws: { "\($0)".contains("no member has host id node-z") }

        // Set from b: a gossips it, with the reason, and the default policy leaves its VMs.
        _ = try await b.control.call("host.health", OperationsTypes.Health(action: .set, host: "node-a", state: "degraded", reason: "fan failure"),
                                     as: OperationsTypes.HealthStatus.self)
        try await Self.waitUntil(30, "c sees a degraded through gossip", log: Self.drsLog([a, b, c])) {
            let seen = try await c.control.call("host.health", OperationsTypes.Health(action: .status, host: "node-a"), as: OperationsTypes.HealthStatus.self)
            return seen.state == "degraded" && seen.reasons.contains { $0.contains("fan failure") } && !seen.evacuating
        }
        let placed = try await c.control.call("vm.place", DRSTypes.Place(create: ControlTypes.CreateVM(spec: Self.spec("new"), start: false)),
                                              as: DRSTypes.Placed.self)
        #expect(placed.host != "node-a" && !placed.ranking.contains("node-a"), "\(placed.ranking)")
        let status = try await c.control.call("drs.status", Empty(), as: DRSTypes.Status.self)
        #expect(status.hosts.first { $0.host == "node-a" }?.state.hasPrefix("degraded") == true, "\(status.hosts)")
        #expect(try await Self.moves([a, b, c]).isEmpty)

        // The policy, set from c, evacuates degraded hosts: a's VMs leave, each once.
        await #expect { _ = try await c.control.call("host.health", OperationsTypes.Health(action: .policy, policy: "sometimes"), as: ControlTypes.Text.self) }
            throws: { "\($0)".contains("evacuate-when-degraded") }
        _ = try await c.control.call("host.health", OperationsTypes.Health(action: .policy, policy: "evacuate-when-degraded"), as: ControlTypes.Text.self)
        // Waited for until the sources have journaled the moves as ended too (a destination runs the
        // VM a moment before its source's record ends); a VM moved twice never matches.
        try await Self.waitUntil(90, "a's VMs moved away, once each", log: Self.drsLog([a, b, c])) {
            let running = try await Self.placement([a, b, c])
            guard running["h1"] != nil && running["h2"] != nil && !running.values.contains("node-a") else { return false }
            return try await Self.moves([a, b, c]) == ["h1": 1, "h2": 1]
        }
        try await Task.sleep(for: .seconds(3)) // three more rounds: nothing comes back or moves again
        #expect(try await Self.moves([a, b, c]) == ["h1": 1, "h2": 1])
        #expect(!(try await Self.placement([a, b, c])).values.contains("node-a"))

        // Healthy again (the mark withdrawn), a takes VMs.
        _ = try await a.control.call("host.health", OperationsTypes.Health(action: .set, state: "healthy"), as: OperationsTypes.HealthStatus.self)
        try await Self.waitUntil(30, "b sees a healthy") {
            try await b.control.call("host.health", OperationsTypes.Health(action: .status, host: "node-a"), as: OperationsTypes.HealthStatus.self).state == "healthy"
        }
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("after"), start: false), as: VMInfo.self)
    }
}
