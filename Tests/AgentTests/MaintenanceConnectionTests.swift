import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// Maintenance (issue 15 item 1) with a connection through it: a host running three VMs, one of
/// them a server a peer VM on another host holds a TCP connection to, enters maintenance from a
/// third agent; every VM leaves, the peer's connection is the same one afterwards and lost
/// nothing, and the host reports ready and takes no VM until `exit`.
extension DRSEndToEndTests {
    @Test func aPeersTCPConnectionSurvivesTheEvacuation() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let net = NetworkIdentityTests()
        let a = try await mesh.start("node-a", arguments: Self.drs)
        let b = try await mesh.start("node-b", arguments: ["--join", a.address, "--peer", a.address] + Self.drs)
        let c = try await mesh.start("node-c", arguments: ["--join", a.address, "--peer", a.address, "--peer", b.address] + Self.drs)
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("server", ip: "10.77.0.3", work: "heartbeat,echo:7"), start: true),
                                     as: VMInfo.self)
        for name in ["m1", "m2"] {
            _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec(name), start: true), as: VMInfo.self)
        }
        _ = try await net.line(b, "server", "HOSTMESH-GUEST ready")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("client", ip: "10.77.0.2", work: "tcp:10.77.0.3:7"), start: true),
                                     as: VMInfo.self)
        let before = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=") { net.field($0, "ok") ?? 0 > 20 }
        #expect(net.field(before, "conn") == 1)
        try await Self.waitForVMs(c, 4)

        _ = try await c.control.call("host.maintenance", DRSTypes.Maintenance(action: .enter, host: "node-b"), as: DRSTypes.MaintenanceStatus.self)
        try await Self.waitUntil(120, "b ready for maintenance", log: Self.drsLog([a, b, c])) {
            try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: "node-b"), as: DRSTypes.MaintenanceStatus.self).state
                == "ready for maintenance"
        }
        let running = try await Self.placement([a, b, c])
        #expect(Set(running.keys) == ["server", "m1", "m2", "client"] && !running.values.contains("node-b"), "\(running)")
        // The sources journal a move as ended a moment after the destination runs the VM.
        try await Self.waitUntil(15, "the three moves journaled as ended", log: Self.drsLog([a, b, c])) {
            try await Self.moves([a, b, c]) == ["server": 1, "m1": 1, "m2": 1]
        }

        // The client still talks over its one connection, to the server wherever it went.
        let okBefore = net.field(before, "ok") ?? 0
        let after = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=") { net.field($0, "ok") ?? 0 > okBefore + 40 }
        #expect(net.field(after, "conn") == 1, "the peer's connection was replaced: \(after)")
        #expect(!(try await net.console(a, "client")).contains("TCP 10.77.0.3:7 error"))

        await #expect { _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("late"), start: false), as: VMInfo.self) }
            throws: { "\($0)".contains("maintenance") }
        _ = try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .exit, host: "node-b"), as: DRSTypes.MaintenanceStatus.self)
        try await Self.waitUntil(15, "b back in service") {
            (try? await b.control.call("vm.create", ControlTypes.CreateVM(spec: Self.spec("late"), start: false), as: VMInfo.self)) != nil
        }
    }
}
