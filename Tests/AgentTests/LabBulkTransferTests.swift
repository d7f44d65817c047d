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

    /// The `Ip:` counters of /proc/net/snmp in a lab host.
    static func ipCounters(_ namespace: String) throws -> [String: Int] {
        let (_, text) = try runTool(Lab.ip, ["netns", "exec", namespace, "cat", "/proc/net/snmp"])
        let rows = text.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("Ip: ") }
        guard rows.count >= 2 else { return [:] }
        return Dictionary(zip(rows[0].split(separator: " ").dropFirst().map(String.init), rows[1].split(separator: " ").dropFirst().map { Int($0) ?? 0 }),
                          uniquingKeysWith: { first, _ in first })
    }

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
        let sentBefore = try Self.ipCounters(lab.namespace(2)), receivedBefore = try Self.ipCounters(lab.namespace(1))
        _ = try await b.control.call("vm.create", ControlTypes.CreateVM(spec: net.spec("sender", ip: "10.77.0.2", work: "bulk:10.77.0.3:5001:\(Self.bytes)"),
                                                                        start: true), as: VMInfo.self)
        let done = try await net.line(a, "sink", "BULKRX 5001 ", timeout: .seconds(120)) { $0.contains(" done ") }
        #expect(net.field(done, "bytes") == Self.bytes, "\(done)")
        #expect(net.field(done, "bad") == 0, "bytes differ from the pattern: \(done)")
        let sent = try await net.line(b, "sender", "BULKTX 10.77.0.3:5001 ") { $0.contains(" done ") }
        // The frames crossed whole because the hosts' kernels fragmented and reassembled the
        // overlay datagrams (1,514-byte frame + 40 bytes of overlay + UDP/IP > 1,500).
        let sentAfter = try Self.ipCounters(lab.namespace(2)), receivedAfter = try Self.ipCounters(lab.namespace(1))
        let fragments = sentAfter["FragCreates", default: 0] - sentBefore["FragCreates", default: 0]
        let reassembled = receivedAfter["ReasmOKs", default: 0] - receivedBefore["ReasmOKs", default: 0]
        // Most data segments are full (1,448 bytes of payload): at least half of them went as two
        // fragments each (a shorter segment may fit one packet).
        #expect(reassembled >= Self.bytes / 1448 / 2 && fragments >= reassembled, "\(fragments) fragments, \(reassembled) reassembled")
        #expect(receivedAfter["ReasmFails", default: 0] == receivedBefore["ReasmFails", default: 0])
        print("across the lab (MTU 1500): \(done); \(sent); \(fragments) IP fragments made, \(reassembled) datagrams reassembled")
    }
}
