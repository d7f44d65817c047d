import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// The end-to-end tests that matter, across a lab (Scripts/lab.sh) rather than loopback: real
/// agents in network namespaces with their own addresses on a 1,500-byte bridge, started with the
/// default wildcard listeners and no --advertise, so each finds the address it advertises itself.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: Lab.available, "needs root and iproute2 (network namespaces)"))
struct LabEndToEndTests {
    /// The loopback suites' helpers (spec, heartbeat, migrate; eventually), used as they are.
    let e2e = MigrationEndToEndTests()
    let membership = MembershipProcessTests()

    @Test(.enabled(if: TestGuest.available, "build the test guest first: make guest"))
    func heartbeatGuestMigratesAcrossTheLabAndBack() async throws {
        let lab = try Lab(hosts: 2)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", on: 1)
        let b = try await mesh.start("node-b", on: 2, arguments: ["--join", a.address])
        // Each advertises its own lab address, found from its default route.
        #expect(a.address == lab.address(1) + ":7946" && b.address == lab.address(2) + ":7946")
        // b knows a's channel by gossip: the way back below goes by host id, through that address.
        try await membership.eventually([a, b], "each knows the other's channel address") { rows in
            rows.count == 2 && rows.allSatisfy { $0.status == "alive" && $0.channel != nil }
        }

        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("hb"), start: true), as: VMInfo.self)
        let (boot, before) = try await e2e.heartbeat(a, "hb", after: 2)
        let there = try await e2e.migrate("hb", from: a, to: b)
        #expect(there.transferredBytes > 0)
        let (bootOnB, onB) = try await e2e.heartbeat(b, "hb", after: before)
        #expect(bootOnB == boot) // same boot: the counter went on
        #expect(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)

        _ = try await b.control.call("migrate", ControlTypes.Migrate(vm: "hb", to: .host("node-a"), settings: MigrationSettings()), as: MigrationReport.self)
        let (bootBack, back) = try await e2e.heartbeat(a, "hb", after: onB)
        #expect(bootBack == boot && back > onB)
        #expect(try await b.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let history = try await a.control.call("migrations", Empty(), as: [MigrationRecord].self)
        #expect(history.map(\.role) == ["destination", "source"] && history.allSatisfy { $0.error == nil })
    }

    /// Network identity across real addresses: a peer VM's pings and its TCP connection to a VM
    /// that moves between two other lab hosts, through the encrypted overlay over the bridge.
    @Test(.enabled(if: TestGuest.available, "build the test guest first: make guest"))
    func aPeerKeepsPingAndTCPWhileTheVMMovesAcrossTheLab() async throws {
        let net = NetworkIdentityTests()
        let lab = try Lab(hosts: 3)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", on: 1)
        let b = try await mesh.start("node-b", on: 2, arguments: ["--join", a.address])
        let c = try await mesh.start("node-c", on: 3, arguments: ["--join", a.address])
        try await membership.eventually([a, b, c], "all three alive everywhere") { rows in
            rows.count == 3 && rows.allSatisfy { $0.status == "alive" && $0.channel != nil }
        }
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("server", ip: "10.77.0.3", work: "heartbeat,echo:7"), start: true),
                                     as: VMInfo.self)
        _ = try await net.line(b, "server", "HOSTMESH-GUEST ready")
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("client", ip: "10.77.0.2", work: "ping:10.77.0.3,tcp:10.77.0.3:7"), start: true),
                                     as: VMInfo.self)
        let before = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=") { net.field($0, "ok") ?? 0 > 20 }
        #expect(net.field(before, "conn") == 1)

        _ = try await b.control.call("migrate", ControlTypes.Migrate(vm: "server", to: .address(try HostPort(parsing: c.address)), settings: MigrationSettings()),
                                     as: MigrationReport.self)
        let okBefore = net.field(before, "ok") ?? 0
        let after = try await net.line(a, "client", "TCP 10.77.0.3:7 conn=") { net.field($0, "ok") ?? 0 > okBefore + 40 }
        #expect(net.field(after, "conn") == 1) // the same TCP connection: it survived
        #expect(!(try await net.console(a, "client")).contains("TCP 10.77.0.3:7 error")) // no mismatch, no loss
        #expect(try await c.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["server"])
    }

    @Test func membersAcrossTheLabSeeEachOthersAddressesAndNoticeADeath() async throws {
        let lab = try Lab(hosts: 3)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1", on: 1)
        var agents = [first]
        for i in 2...3 { agents.append(try await mesh.start("node-\(i)", on: i, arguments: ["--join", first.address])) }
        // Every member is known by the addresses it advertised: its channel (what join and
        // migrate --to take) and its gossip address, both on its own lab address.
        try await membership.eventually(agents, "all three alive everywhere, at their lab addresses") { rows in
            rows.count == 3 && rows.allSatisfy { row in
                guard row.status == "alive", let i = Int(row.host.dropFirst("node-".count)) else { return false }
                return row.channel == lab.address(i) + ":7946" && row.address == lab.address(i) + ":7948"
            }
        }
        let victim = agents[1]
        victim.kill() // SIGKILL: no leave, no goodbye
        try await membership.eventually([agents[0], agents[2]], "the killed member is dead everywhere") { rows in
            rows.first { $0.host == victim.hostID }?.status == "dead"
        }
    }
}
