import Agent
import ControlAPI
import Foundation
import Hypervisor
import Testing

/// A sustained TCP transfer between two VMs on different lab hosts: the guests' full-size
/// frames (1,514 bytes) cross the encrypted overlay over the lab's 1,500-byte bridge, every
/// byte checked by the receiving guest against the sender's pattern.
@Suite(.serialized, .timeLimit(.minutes(4)), .enabled(if: Lab.available, "needs root and iproute2 (network namespaces)"))
struct LabBulkTransferTests {
    let membership = MembershipProcessTests()
    static let bytes = 8 << 20

    @Test(.enabled(if: TestGuest.available, "build the test guest first: make guest"))
    func eightMebibytesBetweenVMsOnTwoLabHosts() async throws {
        let net = NetworkIdentityTests()
        let lab = try Lab(hosts: 2)
        let mesh = try TestMesh(lab: lab)
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", on: 1)
        let b = try await mesh.start("node-b", on: 2, arguments: ["--join", a.address])
        try await membership.eventually([a, b], "both alive everywhere") { rows in
            rows.count == 2 && rows.allSatisfy { $0.status == "alive" && $0.channel != nil }
        }
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("sink", ip: "10.77.0.3", work: "bulksink:5001"), start: true),
                                     as: VMInfo.self)
        _ = try await net.line(a, "sink", "BULKRX 5001 listening")
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("sender", ip: "10.77.0.2", work: "bulk:10.77.0.3:5001:\(Self.bytes)"),
                                                                        start: true), as: VMInfo.self)
        let done = try await net.line(a, "sink", "BULKRX 5001 ", timeout: .seconds(120)) { $0.contains(" done ") }
        #expect(net.field(done, "bytes") == Self.bytes, "\(done)")
        #expect(net.field(done, "bad") == 0, "bytes differ from the pattern: \(done)")
        let sent = try await net.line(b, "sender", "BULKTX 10.77.0.3:5001 ") { $0.contains(" done ") }
        print("across the lab (MTU 1500): \(done); \(sent)")
    }
}
