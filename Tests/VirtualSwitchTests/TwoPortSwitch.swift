import Foundation
import NIOCore
import VirtualSwitch

/// A started switch with one network and two ports, each with a fake NIC at its VM end.
struct TwoPortSwitch {
    let vswitch: VirtualSwitch
    let one: PortAttachment
    let two: PortAttachment
    let nic1: FakeNIC
    let nic2: FakeNIC

    /// Builds it with its sockets under `root` (the caller removes `root`).
    static func make(root: String) async throws -> TwoPortSwitch {
        let vswitch = VirtualSwitch(configuration: .init(hostID: "host-a", overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        try await vswitch.start()
        try await vswitch.addNetwork(Network(name: "net", segment: 100))
        let one = PortAttachment(switchSocketPath: root + "/1.sw", vmSocketPath: root + "/1.vm")
        let two = PortAttachment(switchSocketPath: root + "/2.sw", vmSocketPath: root + "/2.vm")
        try await vswitch.createPort(CoreFixture.port(1), attachment: one)
        try await vswitch.createPort(CoreFixture.port(2), attachment: two)
        let nic1 = try await FakeNIC(vmPath: one.vmSocketPath, switchPath: one.switchSocketPath)
        let nic2 = try await FakeNIC(vmPath: two.vmSocketPath, switchPath: two.switchSocketPath)
        return TwoPortSwitch(vswitch: vswitch, one: one, two: two, nic1: nic1, nic2: nic2)
    }
}
