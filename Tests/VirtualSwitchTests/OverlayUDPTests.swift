import Foundation
import MeshCrypto
import NIOCore
import NIOPosix
import Testing
@testable import VirtualSwitch

/// Two switch shells in this process, each with its own UDP socket on 127.0.0.1, and fake
/// NICs on unix sockets: frames cross the encrypted overlay; forged datagrams do not.
@Suite("Overlay over real UDP", .serialized, .timeLimit(.minutes(1)))
struct OverlayUDPTests {
    struct Pair {
        let a: VirtualSwitch
        let b: VirtualSwitch
        let secret: SecretBytes
        let nicA: FakeNIC
        let nicB: FakeNIC
        let relay: Task<Void, Never>
        let root: String

        func shutdown() async {
            relay.cancel()
            await nicA.close()
            await nicB.close()
            await a.stop()
            await b.stop()
            try? FileManager.default.removeItem(atPath: root)
        }
    }

    static func makePair() async throws -> Pair {
        let root = temporaryDirectory()
        let a = VirtualSwitch(configuration: .init(hostID: "host-a", overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        let b = VirtualSwitch(configuration: .init(hostID: "host-b", overlayAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 0)))
        try await a.start()
        try await b.start()
        let secret = SecretBytes(randomCount: 32)
        try await a.setPeer("host-b", address: #require(await b.overlayAddress()), sharedSecret: secret)
        try await b.setPeer("host-a", address: #require(await a.overlayAddress()), sharedSecret: secret)
        let relay = relayLocations(among: [a, b])
        for s in [a, b] { try await s.addNetwork(Network(name: "net", segment: 100)) }
        try await a.createPort(CoreFixture.port(1), attachment: PortAttachment(switchSocketPath: root + "/a-sw", vmSocketPath: root + "/a-vm"))
        try await b.createPort(CoreFixture.port(2), attachment: PortAttachment(switchSocketPath: root + "/b-sw", vmSocketPath: root + "/b-vm"))
        let nicA = try await FakeNIC(vmPath: root + "/a-vm", switchPath: root + "/a-sw")
        let nicB = try await FakeNIC(vmPath: root + "/b-vm", switchPath: root + "/b-sw")
        // Each switch learns the other's VM by "gossip".
        let learned = await eventually {
            let onA = await a.locationEntries().count, onB = await b.locationEntries().count
            return onA == 2 && onB == 2
        }
        #expect(learned, "locations relayed")
        return Pair(a: a, b: b, secret: secret, nicA: nicA, nicB: nicB, relay: relay, root: root)
    }

    @Test func framesCrossTheEncryptedOverlayBothWays() async throws {
        let pair = try await Self.makePair()
        defer { Task { await pair.shutdown() } }
        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        try await pair.nicA.send(ping)
        #expect(await eventually { pair.nicB.frames.count == 1 })
        #expect(pair.nicB.frames.first == ping)
        let pong = TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1), reply: true)
        try await pair.nicB.send(pong)
        #expect(await eventually { pair.nicA.frames.count == 1 })
        #expect(pair.nicA.frames.first == pong)
        // Proxy ARP answers for the remote VM locally.
        try await pair.nicA.send(TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: .test(2)))
        #expect(await eventually { pair.nicA.frames.count == 2 })
        #expect(ARPPacket(frame: pair.nicA.frames[1])?.senderMAC == .test(2))
        let (switchA, overlayA) = await pair.a.counters()
        #expect(overlayA.datagramsSent >= 1 && overlayA.datagramsReceived >= 1)
        #expect(switchA.overlayFramesIn == 1)
        #expect(await pair.a.counters(of: "vm1/eth0")?.txFrames == 2)
        #expect(await pair.b.counters(of: "vm2/eth0")?.rxFrames == 1)
        await pair.shutdown()
    }

    @Test func forgedReplayedAndForeignDatagramsAreDroppedAndCounted() async throws {
        let pair = try await Self.makePair()
        defer { Task { await pair.shutdown() } }
        let raw = try await RawUDP()
        defer { Task { await raw.close() } }
        let target = try #require(await pair.b.overlayAddress())
        let allocator = ByteBufferAllocator()
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))

        // A sender holding host-a's real keys, with counters far ahead of the real host-a's.
        var impostor = OverlayEndpoint(localHost: "host-a")
        try impostor.setPeer("host-b", address: target, keys: OverlayKeys.derive(from: pair.secret, localHost: "host-a",
                                                                                  peerHost: "host-b", algorithm: .chacha20poly1305))
        for _ in 0..<100 { _ = impostor.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator) }
        let genuine = try unwrap(impostor.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram
        var badTag = try unwrap(impostor.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram
        badTag.setInteger(badTag.getInteger(at: badTag.writerIndex - 1, as: UInt8.self)! ^ 0x80, at: badTag.writerIndex - 1)

        var stranger = OverlayEndpoint(localHost: "host-x")
        try stranger.setPeer("host-b", address: target, keys: OverlayKeys.derive(from: SecretBytes(randomCount: 32), localHost: "host-x",
                                                                                  peerHost: "host-b", keyID: 0, algorithm: .chacha20poly1305))
        let foreign = try unwrap(stranger.seal(frame, kind: .frame, segment: 100, to: "host-b", allocator: allocator)).datagram

        try await raw.send(badTag, to: target)
        try await raw.send(foreign, to: target)
        try await raw.send(genuine, to: target)
        try await raw.send(genuine, to: target)
        let counted = await eventually {
            let overlay = await pair.b.counters().overlay
            return overlay[.badTag] == 1 && overlay[.unknownHost] == 1 && overlay[.replay] == 1
        }
        let overlayCounters = await pair.b.counters().overlay
        #expect(counted, "\(overlayCounters)")
        #expect(await eventually { pair.nicB.frames.count == 1 }, "the genuine datagram once")
        try? await Task.sleep(for: .milliseconds(100))
        #expect(pair.nicB.frames.count == 1)
        await raw.close()
        await pair.shutdown()
    }

    @Test func aLocationPushedDirectlyOverTheOverlayUpdatesThePeer() async throws {
        let pair = try await Self.makePair()
        defer { Task { await pair.shutdown() } }
        // host-a imports a port blocked (an incoming VM), then its RARP activates it; host-b
        // hears the push directly (no gossip relay involved: host-b already has host-a's ports).
        pair.relay.cancel()
        let record = PortStateRecord(configuration: CoreFixture.port(3), segment: 100, counters: PortCounters(), learned: [],
                                     connections: [], generation: 1, mobilitySequence: 7)
        try await pair.a.importPort(record, attachment: PortAttachment(switchSocketPath: pair.root + "/c-sw", vmSocketPath: pair.root + "/c-vm"))
        let nicC = try await FakeNIC(vmPath: pair.root + "/c-vm", switchPath: pair.root + "/c-sw")
        defer { Task { await nicC.close() } }
        try await nicC.send(TestFrames.icmpEcho(from: .test(3), to: .test(2), src: .test(3), dst: .test(2)))
        try await nicC.send(TestFrames.rarp(from: .test(3)))
        let pushed = await eventually {
            await pair.b.locationEntries().first { $0.location.mac == .test(3) }?.location.sequence == 8
        }
        #expect(pushed)
        #expect(await pair.a.portStatus("vm3/eth0")?.lifecycle == .active)
        #expect(await pair.a.counters(of: "vm3/eth0")?[.portBlocked] == 1)
        await nicC.close()
        await pair.shutdown()
    }
}
