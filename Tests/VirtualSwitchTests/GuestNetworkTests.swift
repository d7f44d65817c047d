import Foundation
import Hypervisor
import NIOCore
import Testing
@testable import VirtualSwitch

/// Real test guests (QEMU, TCG, 128 MiB) on real switches: ICMP and a TCP echo connection
/// between guests on one switch and across the encrypted overlay between two switches, and
/// frames forged into a port's socket.
@Suite("Real guests on the virtual switch", .guestBuilt, .serialized, .timeLimit(.minutes(2)))
struct GuestNetworkTests {
    static let macA = MACAddress("52:54:00:77:00:02")!
    static let macB = MACAddress("52:54:00:77:00:03")!

    static func port(_ name: String, mac: MACAddress, ip: String) -> PortConfiguration {
        PortConfiguration(id: PortID("\(name)/eth0"), network: "net", mac: mac, allowedIPs: [IPPrefix(ip)!])
    }

    static func makeSwitch(_ host: HostID) async throws -> VirtualSwitch {
        let vswitch = VirtualSwitch(configuration: .init(hostID: host, overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        try await vswitch.start()
        try await vswitch.addNetwork(Network(name: "net", segment: 100))
        return vswitch
    }

    /// Waits until guest A has had `pings` ping replies from B and `echoes` TCP echoes on one
    /// connection; returns A's console.
    static func waitForTraffic(on guest: VMProcess, pings: Int = 5, echoes: Int = 5, timeout: Duration = .seconds(60)) async -> String {
        var console = ""
        _ = await eventually(timeout: timeout) {
            console = guest.directory.readConsole()
            return Guests.pingsReceived(console) >= pings && (Guests.tcpEchoes(console)?.ok ?? 0) >= echoes
        }
        return console
    }

    @Test func twoGuestsOnOneSwitchPingHoldATCPConnectionAndForgedFramesAreDropped() async throws {
        let started = ContinuousClock.now
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let vswitch = try await Self.makeSwitch("host-a")
        let attachA = PortAttachment(switchSocketPath: root + "/a.sw", vmSocketPath: root + "/a.vm")
        let attachB = PortAttachment(switchSocketPath: root + "/b.sw", vmSocketPath: root + "/b.vm")
        try await vswitch.createPort(Self.port("vm-a", mac: Self.macA, ip: "10.77.0.2"), attachment: attachA)
        try await vswitch.createPort(Self.port("vm-b", mac: Self.macB, ip: "10.77.0.3"), attachment: attachB)

        let guestB = try await Guests.launch(#require(Guests.spec(name: "vm-b", mac: Self.macB, ip: "10.77.0.3", work: "echo:7",
                                                                  attachment: attachB)), in: root + "/vmb")
        defer { guestB.kill() }
        let guestA = try await Guests.launch(#require(Guests.spec(name: "vm-a", mac: Self.macA, ip: "10.77.0.2",
                                                                  work: "ping:10.77.0.3,tcp:10.77.0.3:7", attachment: attachA)), in: root + "/vma")
        defer { guestA.kill() }

        let console = await Self.waitForTraffic(on: guestA)
        #expect(Guests.pingsReceived(console) >= 5, "A's console: \(console.suffix(800))\nB's: \(guestB.directory.readConsole().suffix(400))")
        let tcp = Guests.tcpEchoes(console)
        #expect(tcp?.ok ?? 0 >= 5)
        #expect(tcp?.connections == 1, "one connection, never re-made")

        // Forged frames written into A's port socket, as a compromised QEMU would.
        let before = try #require(await vswitch.counters(of: "vm-a/eth0"))
        let injector = try await FakeNIC(vmPath: root + "/inject", switchPath: attachA.switchSocketPath)
        defer { Task { await injector.close() } }
        let forgedMAC = TestFrames.icmpEcho(from: MACAddress("52:54:00:77:00:99")!, to: Self.macB, src: IPAddress("10.77.0.2")!,
                                            dst: IPAddress("10.77.0.3")!)
        let forgedIP = TestFrames.icmpEcho(from: Self.macA, to: Self.macB, src: IPAddress("10.77.0.99")!, dst: IPAddress("10.77.0.3")!)
        try await injector.send(forgedMAC)
        try await injector.send(forgedIP)
        let dropped = await eventually {
            let now = await vswitch.counters(of: "vm-a/eth0")
            return now?[.macSpoofed] == before[.macSpoofed] + 1 && now?[.ipSpoofed] == before[.ipSpoofed] + 1
        }
        let after = try #require(await vswitch.counters(of: "vm-a/eth0"))
        #expect(dropped, "before \(before), after \(after)")
        #expect(before[.macSpoofed] == 0 && before[.ipSpoofed] == 0, "the real guest never tripped anti-spoofing")
        #expect(after.rxFrames >= before.rxFrames + 2 && after.txFrames >= before.txFrames)

        await injector.close()
        await guestA.stop(quitGrace: .seconds(1))
        await guestB.stop(quitGrace: .seconds(1))
        await vswitch.stop()
        print("one switch: A received \(Guests.pingsReceived(console)) ping replies, \(tcp?.ok ?? 0) TCP echoes on conn=\(tcp?.connections ?? 0), "
            + "mean rtt \(Guests.meanRTT(console).map { "\(Int($0)) us" } ?? "?"); test took \(ContinuousClock.now - started)")
    }

    @Test func twoGuestsOnTwoSwitchesTalkThroughTheEncryptedOverlay() async throws {
        let started = ContinuousClock.now
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let switchA = try await Self.makeSwitch("host-a")
        let switchB = try await Self.makeSwitch("host-b")
        let secret = MeshCryptoSupport.randomSecret()
        try await switchA.setPeer("host-b", address: #require(await switchB.overlayAddress()), sharedSecret: secret)
        try await switchB.setPeer("host-a", address: #require(await switchA.overlayAddress()), sharedSecret: secret)
        let relay = relayLocations(among: [switchA, switchB])
        defer { relay.cancel() }

        let attachA = PortAttachment(switchSocketPath: root + "/a.sw", vmSocketPath: root + "/a.vm")
        let attachB = PortAttachment(switchSocketPath: root + "/b.sw", vmSocketPath: root + "/b.vm")
        try await switchA.createPort(Self.port("vm-a", mac: Self.macA, ip: "10.77.0.2"), attachment: attachA)
        try await switchB.createPort(Self.port("vm-b", mac: Self.macB, ip: "10.77.0.3"), attachment: attachB)

        let guestB = try await Guests.launch(#require(Guests.spec(name: "vm-b", mac: Self.macB, ip: "10.77.0.3", work: "echo:7",
                                                                  attachment: attachB)), in: root + "/vmb")
        defer { guestB.kill() }
        let guestA = try await Guests.launch(#require(Guests.spec(name: "vm-a", mac: Self.macA, ip: "10.77.0.2",
                                                                  work: "ping:10.77.0.3,tcp:10.77.0.3:7", attachment: attachA)), in: root + "/vma")
        defer { guestA.kill() }

        let console = await Self.waitForTraffic(on: guestA)
        #expect(Guests.pingsReceived(console) >= 5, "A's console: \(console.suffix(800))\nB's: \(guestB.directory.readConsole().suffix(400))")
        let tcp = Guests.tcpEchoes(console)
        #expect(tcp?.ok ?? 0 >= 5)
        #expect(tcp?.connections == 1)

        let (countersA, overlayA) = await switchA.counters()
        let (_, overlayB) = await switchB.counters()
        #expect(overlayA.datagramsSent > 10 && overlayB.datagramsReceived > 10, "the traffic went through the overlay")
        #expect(overlayA.drops.isEmpty && overlayB.drops.isEmpty)
        #expect(countersA.overlayFramesIn > 10)
        let portA = try #require(await switchA.counters(of: "vm-a/eth0"))
        #expect(portA.totalDrops == 0, "\(portA)")

        relay.cancel()
        await guestA.stop(quitGrace: .seconds(1))
        await guestB.stop(quitGrace: .seconds(1))
        await switchA.stop()
        await switchB.stop()
        print("two switches: A received \(Guests.pingsReceived(console)) ping replies, \(tcp?.ok ?? 0) TCP echoes on conn=\(tcp?.connections ?? 0), "
            + "mean rtt \(Guests.meanRTT(console).map { "\(Int($0)) us" } ?? "?"), \(overlayA.datagramsSent) datagrams A->B; "
            + "test took \(ContinuousClock.now - started)")
    }
}
