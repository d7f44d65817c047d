import Foundation
import Hypervisor
import NIOCore
import Testing
@testable import VirtualSwitch

/// A sustained TCP transfer between two real guests (8 MiB, every byte checked by the
/// receiving guest against the sender's pattern): through one switch, and across the encrypted
/// overlay between two switches. A transfer that stalls never prints its `done` line.
@Suite("Bulk TCP between real guests", .guestBuilt, .serialized, .timeLimit(.minutes(3)))
struct GuestBulkTransferTests {
    static let bytes = 8 << 20
    static let macA = MACAddress("52:54:00:77:01:02")!
    static let macB = MACAddress("52:54:00:77:01:03")!

    /// The `BULKRX <port> done …` line of the receiving guest, once it is there.
    static func doneLine(_ guest: VMProcess, prefix: String, timeout: Duration = .seconds(120)) async -> String? {
        var found: String?
        _ = await eventually(timeout: timeout) {
            found = guest.directory.readConsole().split(whereSeparator: \.isNewline)
                .last { $0.hasPrefix(prefix) && $0.contains(" done ") }.map(String.init)
            return found != nil
        }
        return found
    }

    static func field(_ line: String, _ name: String) -> Int? {
        line.split(separator: " ").first { $0.hasPrefix(name + "=") }.flatMap { Int($0.dropFirst(name.count + 1)) }
    }

    /// Boots the sink on `attachB` and the sender on `attachA`; returns both `done` lines.
    static func transfer(_ root: String, attachA: PortAttachment, attachB: PortAttachment) async throws -> (tx: String?, rx: String?, rxConsole: String) {
        let sink = try await Guests.launch(#require(Guests.spec(name: "sink", mac: macB, ip: "10.77.1.3", work: "bulksink:5001",
                                                                attachment: attachB)), in: root + "/sink")
        defer { sink.kill() }
        let sender = try await Guests.launch(#require(Guests.spec(name: "sender", mac: macA, ip: "10.77.1.2",
                                                                  work: "bulk:10.77.1.3:5001:\(bytes)", attachment: attachA)), in: root + "/sender")
        defer { sender.kill() }
        let rx = await doneLine(sink, prefix: "BULKRX 5001")
        let tx = await doneLine(sender, prefix: "BULKTX 10.77.1.3:5001", timeout: .seconds(10))
        let rxConsole = sink.directory.readConsole()
        await sender.stop(quitGrace: .seconds(1))
        await sink.stop(quitGrace: .seconds(1))
        return (tx, rx, rxConsole)
    }

    static func port(_ name: String, mac: MACAddress, ip: String) -> PortConfiguration {
        PortConfiguration(id: PortID("\(name)/eth0"), network: "net", mac: mac, allowedIPs: [IPPrefix(ip)!])
    }

    static func check(_ result: (tx: String?, rx: String?, rxConsole: String)) {
        let rx = result.rx ?? ""
        #expect(field(rx, "bytes") == bytes, "the sink's last lines: \(result.rxConsole.suffix(600))")
        #expect(field(rx, "bad") == 0, "bytes differ from the pattern: \(rx)")
        #expect(result.tx != nil, "the sender did not finish")
    }

    @Test func eightMebibytesThroughOneSwitch() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let vswitch = try await GuestNetworkTests.makeSwitch("host-a")
        let attachA = PortAttachment(switchSocketPath: root + "/a.sw", vmSocketPath: root + "/a.vm")
        let attachB = PortAttachment(switchSocketPath: root + "/b.sw", vmSocketPath: root + "/b.vm")
        try await vswitch.createPort(Self.port("sender", mac: Self.macA, ip: "10.77.1.2"), attachment: attachA)
        try await vswitch.createPort(Self.port("sink", mac: Self.macB, ip: "10.77.1.3"), attachment: attachB)
        let result = try await Self.transfer(root, attachA: attachA, attachB: attachB)
        let sender = await vswitch.counters(of: "sender/eth0"), sink = await vswitch.counters(of: "sink/eth0")
        await vswitch.stop()
        Self.check(result)
        print("one switch: \(result.rx ?? "no done line"); \(result.tx ?? "")\n  sender port \(sender.map { "\($0)" } ?? "?")\n  sink port \(sink.map { "\($0)" } ?? "?")")
    }

    @Test func eightMebibytesAcrossTheOverlay() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let switchA = try await GuestNetworkTests.makeSwitch("host-a")
        let switchB = try await GuestNetworkTests.makeSwitch("host-b")
        let secret = MeshCryptoSupport.randomSecret()
        try await switchA.setPeer("host-b", address: #require(await switchB.overlayAddress()), sharedSecret: secret)
        try await switchB.setPeer("host-a", address: #require(await switchA.overlayAddress()), sharedSecret: secret)
        let relay = relayLocations(among: [switchA, switchB])
        defer { relay.cancel() }
        let attachA = PortAttachment(switchSocketPath: root + "/a.sw", vmSocketPath: root + "/a.vm")
        let attachB = PortAttachment(switchSocketPath: root + "/b.sw", vmSocketPath: root + "/b.vm")
        try await switchA.createPort(Self.port("sender", mac: Self.macA, ip: "10.77.1.2"), attachment: attachA)
        try await switchB.createPort(Self.port("sink", mac: Self.macB, ip: "10.77.1.3"), attachment: attachB)
        let result = try await Self.transfer(root, attachA: attachA, attachB: attachB)
        let sender = await switchA.counters(of: "sender/eth0"), sink = await switchB.counters(of: "sink/eth0")
        let (_, overlayA) = await switchA.counters(), (_, overlayB) = await switchB.counters()
        relay.cancel()
        await switchA.stop()
        await switchB.stop()
        Self.check(result)
        print("two switches: \(result.rx ?? "no done line"); \(result.tx ?? "")\n  sender port \(sender.map { "\($0)" } ?? "?")\n  sink port \(sink.map { "\($0)" } ?? "?")\n  overlay A \(overlayA), B \(overlayB)")
    }
}
