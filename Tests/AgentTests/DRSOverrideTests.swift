import Agent
import ControlAPI
import Foundation
import Hypervisor
import Placement
import Testing

/// Per-VM DRS overrides with real agents and real QEMU (issue 14, Protocol.md §10.9): a VM's own
/// automation level replaces the mesh's for its balancing moves, in either direction, and its own
/// threshold 1 keeps it out of balancing altogether.
@Suite(.serialized, .timeLimit(.minutes(5)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct DRSOverrideTests {
    static func spec(_ name: String, automation: String? = nil, threshold: Int? = nil) -> VMSpec {
        ResourcePoolEndToEndTests.spec(name, hot: true, resources: VMSpec.Resources(automation: automation, threshold: threshold))
    }

    @Test func aVMsOwnAutomationAndThresholdOverrideTheMeshs() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: DRSEndToEndTests.drs)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address] + DRSEndToEndTests.drs)
        let c = try await mesh.start("node-c", arguments: ["--join", a.address] + DRSEndToEndTests.drs)
        let agents = [a, b, c]
        _ = try await a.control.call("drs.set", DRSTypes.Set(automation: .manual), as: ControlTypes.Text.self)
        // Two hot VMs on node-a: "stay" is never moved for balance (its threshold 1), "eager" is
        // moved automatically (its level full) although the mesh is manual.
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("stay", threshold: 1), start: true), as: VMInfo.self)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("eager", automation: "full"), start: true), as: VMInfo.self)
        try await DRSEndToEndTests.waitUntil(90, "eager moved off node-a by the mesh", log: DRSEndToEndTests.drsLog(agents)) {
            ["node-b", "node-c"].contains(try await DRSEndToEndTests.placement(agents)["eager"])
        }
        let eager = try #require(try await DRSEndToEndTests.placement(agents)["eager"])
        #expect(try await DRSEndToEndTests.placement(agents)["stay"] == "node-a")
        #expect(try await a.control.call("drs.status", Empty(), as: DRSTypes.Status.self).automation == .manual)

        // The mesh fully automated now; "held" (its level manual) joins "stay" on node-a: the move
        // that would balance the mesh (to the empty host) is hers, only recommended, never made.
        _ = try await b.control.call("drs.set", DRSTypes.Set(automation: .full), as: ControlTypes.Text.self)
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("held", automation: "manual"), start: true), as: VMInfo.self)
        var recommended: [DRSTypes.Recommendation] = []
        try await DRSEndToEndTests.waitUntil(60, "held recommended", log: DRSEndToEndTests.drsLog(agents)) {
            recommended = try await a.control.call("drs.recommendations", Empty(), as: [DRSTypes.Recommendation].self)
            return recommended.contains { $0.vmName == "held" }
        }
        #expect(!recommended.contains { $0.vmName == "stay" }, "\(recommended)")
        try await Task.sleep(for: .seconds(7)) // three rounds under full automation
        let now = try await DRSEndToEndTests.placement(agents)
        #expect(now == ["stay": "node-a", "held": "node-a", "eager": eager], "\(now)\n\(DRSEndToEndTests.drsLog(agents))")
        #expect(try await DRSEndToEndTests.moves(agents) == ["eager": 1])
        #expect(try await a.control.call("drs.recommendations", Empty(), as: [DRSTypes.Recommendation].self).contains { $0.vmName == "held" })
    }
}
