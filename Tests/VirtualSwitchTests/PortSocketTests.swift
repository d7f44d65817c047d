import Foundation
import NIOCore
import Testing
@testable import VirtualSwitch
#if canImport(Glibc)
import Glibc
#endif

/// The shell's port sockets under misuse.
@Suite("Port sockets", .serialized, .timeLimit(.minutes(1)))
struct PortSocketTests {
    /// Sends one datagram from an unbound (unnamed) unix socket.
    static func sendUnnamed(_ bytes: [UInt8], to path: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        let address = try SocketAddress(unixDomainSocketPath: path)
        let sent = bytes.withUnsafeBytes { raw in
            address.withSockAddr { pointer, length in sendto(fd, raw.baseAddress, raw.count, 0, pointer, socklen_t(length)) }
        }
        try #require(sent == bytes.count)
    }

    @Test func aDatagramFromAnUnnamedSenderNeitherCrashesNorCutsOffThePort() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await TwoPortSwitch.make(root: root)
        let (vswitch, one, nic1, nic2) = (setup.vswitch, setup.one, setup.nic1, setup.nic2)

        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        try Self.sendUnnamed(Array(ping.readableBytesView), to: one.switchSocketPath)
        try Self.sendUnnamed([], to: one.switchSocketPath)
        try await Task.sleep(for: .milliseconds(100))
        try await nic1.send(ping)
        #expect(await eventually { nic2.frames.count >= 1 }, "port 1 still forwards")
        #expect(await vswitch.portSocketRebinds() >= 1)
        await nic1.close()
        await nic2.close()
        await vswitch.stop()
        #expect(!FileManager.default.fileExists(atPath: one.switchSocketPath), "socket files removed on stop")
    }

    @Test func stalePathsAreReplacedButOtherFilesAreNot() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let vswitch = VirtualSwitch(configuration: .init(hostID: "host-a", overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        try await vswitch.addNetwork(Network(name: "net", segment: 100))
        _ = FileManager.default.createFile(atPath: root + "/file", contents: Data([1]))
        await #expect(throws: VirtualSwitchError.pathNotASocket(path: root + "/file")) {
            try await vswitch.createPort(CoreFixture.port(1), attachment: PortAttachment(switchSocketPath: root + "/file", vmSocketPath: root + "/vm"))
        }
        // A socket file left by a crashed run is replaced.
        let stale = try await FakeNIC(vmPath: root + "/stale", switchPath: root + "/nowhere")
        await stale.close()
        try await vswitch.createPort(CoreFixture.port(1), attachment: PortAttachment(switchSocketPath: root + "/stale", vmSocketPath: root + "/vm"))
        await #expect(throws: VirtualSwitchError.switch(.portExists("vm1/eth0"))) {
            try await vswitch.createPort(CoreFixture.port(1), attachment: PortAttachment(switchSocketPath: root + "/x", vmSocketPath: root + "/vm"))
        }
        let long = root + "/" + String(repeating: "x", count: 120)
        await #expect(throws: VirtualSwitchError.socketPathTooLong(path: long)) {
            try await vswitch.createPort(CoreFixture.port(2), attachment: PortAttachment(switchSocketPath: long, vmSocketPath: root + "/vm2"))
        }
        await vswitch.stop()
        print(VirtualSwitchError.pathNotASocket(path: root + "/file"))
    }
}
