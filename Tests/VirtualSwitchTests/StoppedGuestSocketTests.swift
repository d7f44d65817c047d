import Foundation
import NIOCore
import Testing
@testable import VirtualSwitch
#if canImport(Glibc)
import Glibc
#endif

/// Frames the source's switch handed to a guest's socket after QEMU stopped the guest, before the
/// port paused (QEMU's STOP reaches the agent some milliseconds late): the stopped QEMU never
/// gives them to the guest, so the freeze sends copies on to the destination (Protocol.md
/// §8.6.1). A bound socket that nobody reads stands in for the stopped QEMU.
@Suite("Frames handed to a stopped guest's socket", .serialized, .timeLimit(.minutes(1)))
struct StoppedGuestSocketTests {
    /// A unix datagram socket bound at `path` that is never read: a stopped QEMU's NIC.
    final class StoppedNIC {
        let fd: Int32
        init(path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            try #require(fd >= 0)
            let address = try SocketAddress(unixDomainSocketPath: path)
            let bound = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
            try #require(bound == 0)
        }
        /// Datagrams waiting in the socket.
        var queued: Int {
            var count = 0
            while true {
                var byte: UInt8 = 0
                guard recv(fd, &byte, 1, Int32(MSG_DONTWAIT)) >= 0 else { return count }
                count += 1
            }
        }
        deinit { close(fd) }
    }

    struct Setup {
        let a: VirtualSwitch
        let b: VirtualSwitch
        let sender: FakeNIC
        let stopped: StoppedNIC
        let moving: PortID = "vm2/eth0"
    }

    /// Switch A with a sender (port 1) and the moving guest's port (port 2, its QEMU stopped);
    /// switch B with port 2 imported, blocked, as a destination's.
    static func setUp(root: String) async throws -> Setup {
        let a = try await GuestNetworkTests.makeSwitch("host-a"), b = try await GuestNetworkTests.makeSwitch("host-b")
        let secret = MeshCryptoSupport.randomSecret()
        try await a.setPeer("host-b", address: #require(await b.overlayAddress()), sharedSecret: secret)
        try await b.setPeer("host-a", address: #require(await a.overlayAddress()), sharedSecret: secret)
        let one = PortAttachment(switchSocketPath: root + "/1.sw", vmSocketPath: root + "/1.vm")
        let two = PortAttachment(switchSocketPath: root + "/2.sw", vmSocketPath: root + "/2.vm")
        try await a.createPort(CoreFixture.port(1), attachment: one)
        try await a.createPort(CoreFixture.port(2), attachment: two)
        let sender = try await FakeNIC(vmPath: one.vmSocketPath, switchPath: one.switchSocketPath)
        let stopped = try StoppedNIC(path: two.vmSocketPath)
        let record = try await a.exportPortState("vm2/eth0")
        try await b.importPort(PortStateRecord(serializedBytes: record.serializedBytes()),
                               attachment: PortAttachment(switchSocketPath: root + "/2b.sw", vmSocketPath: root + "/2b.vm"),
                               activationTimeout: .seconds(30))
        return Setup(a: a, b: b, sender: sender, stopped: stopped)
    }

    /// Sends `count` pings from port 1 to port 2 and waits until A handed them to port 2's socket.
    static func ping(_ setup: Setup, count: Int) async throws {
        let before = await setup.a.counters(of: setup.moving)?.txFrames ?? 0
        for _ in 0..<count {
            try await setup.sender.send(TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2)))
        }
        let handed = await eventually { (await setup.a.counters(of: setup.moving)?.txFrames ?? 0) >= before + UInt64(count) }
        try #require(handed)
    }

    @Test func framesHandedOverAfterTheStopGoToTheDestinationAtTheFreeze() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await Self.setUp(root: root)
        try await Self.ping(setup, count: 2)  // before the stop: QEMU read them, the guest had them
        #expect(setup.stopped.queued == 2)
        let stoppedAt = Date().timeIntervalSince1970
        try await Self.ping(setup, count: 3)  // after QEMU's STOP, before the agent paused the port
        _ = try await setup.a.freezePort(setup.moving, destination: "host-b", guestStoppedAt: stoppedAt)
        let held = await eventually { await setup.b.heldFrames(of: setup.moving)?.frames == 3 }
        let onB = await setup.b.heldFrames(of: setup.moving)
        #expect(held, "B holds \(String(describing: onB))")
        #expect(await setup.a.counters().switch.heldFramesForwarded == 3)
        // The stopped QEMU still has the three: a rollback would give them to the guest once.
        #expect(setup.stopped.queued == 3)
        #expect(await setup.a.counters().switch.heldFramesCopiedUnread == 0)
        await setup.sender.close()
        await setup.a.stop()
        await setup.b.stop()
    }

    /// Handed over before the STOP while QEMU was not reading (its main loop held by the
    /// migration's last pass, or the guest's receive ring full): still in its socket at the
    /// freeze, never given to the guest. The kernel's unread bytes on the port's socket say so.
    @Test func framesHandedOverBeforeTheStopThatTheSocketStillHoldsGoToTheDestination() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await Self.setUp(root: root)
        try await Self.ping(setup, count: 2)
        #expect(setup.stopped.queued == 2)  // read: the guest had these
        try await Self.ping(setup, count: 4)  // not read before the stop
        // And one of another size (the kernel's size of each unread datagram differs by length).
        try await setup.sender.send(TestFrames.ipv4(from: .test(1), to: .test(2), src: .test(1), dst: .test(2), proto: 1,
                                                    transport: [8, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 7, count: 1000)))
        let handed = await eventually { (await setup.a.counters(of: setup.moving)?.txFrames ?? 0) >= 7 }
        try #require(handed)
        let stoppedAt = Date().timeIntervalSince1970
        _ = try await setup.a.freezePort(setup.moving, destination: "host-b", guestStoppedAt: stoppedAt)
        let held = await eventually { await setup.b.heldFrames(of: setup.moving)?.frames == 5 }
        let onB = await setup.b.heldFrames(of: setup.moving)
        #expect(held, "B holds \(String(describing: onB))")
        let counters = await setup.a.counters().switch
        #expect(counters.heldFramesCopied == 5 && counters.heldFramesCopiedUnread == 5, "\(counters)")
        #expect(setup.stopped.queued == 5)  // the originals, for a rollback
        await setup.sender.close()
        await setup.a.stop()
        await setup.b.stop()
    }

    /// A guest paused long enough (`vm pause`) that more frames were held than its socket and the
    /// switch's backlog bound take (400 > 11 + 256): once it reads again every one reaches it, in
    /// order, and none is dropped as `guest-busy`.
    @Test func everyHeldFrameReachesTheGuestWhenItResumesHoweverManyThereAre() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await Self.setUp(root: root)
        try await setup.a.pausePort(setup.moving)
        let count = 400
        for sequence in 0..<count {
            try await setup.sender.send(TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2), sequence: UInt16(sequence)))
        }
        let held = await eventually { await setup.a.heldFrames(of: setup.moving)?.frames == count }
        let holding = await setup.a.heldFrames(of: setup.moving)
        try #require(held, "A holds \(String(describing: holding))")
        try await setup.a.resumePort(setup.moving)  // the guest not reading yet, as QEMU before it runs
        try await Task.sleep(for: .milliseconds(100))
        var sequences: [Int] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while sequences.count < count, ContinuousClock.now < deadline {
            var frame = [UInt8](repeating: 0, count: 2048)
            let got = recv(setup.stopped.fd, &frame, frame.count, Int32(MSG_DONTWAIT))
            if got > 41 { sequences.append(Int(frame[40]) << 8 | Int(frame[41])) } else { try await Task.sleep(for: .milliseconds(2)) }
        }
        #expect(sequences == Array(0..<count), "\(sequences.count) frames, first out of order at \(String(describing: zip(sequences, 0...).first { $0 != $1 }))")
        let port = try #require(await setup.a.counters(of: setup.moving))
        #expect(port[.guestBusy] == 0, "\(port)")
        #expect(await setup.a.counters().switch.heldFramesDelivered == UInt64(count))
        await setup.sender.close()
        await setup.a.stop()
        await setup.b.stop()
    }

    @Test func framesQEMUReadBeforeTheStopOrWithoutADestinationStay() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let setup = try await Self.setUp(root: root)
        try await Self.ping(setup, count: 3)
        let stoppedAt = Date().timeIntervalSince1970
        // Frozen without a destination (the frames would be delivered here on a rollback, where
        // QEMU still has them): nothing is taken back.
        _ = try await setup.a.freezePort(setup.moving, guestStoppedAt: stoppedAt - 60)
        #expect(await setup.a.heldFrames(of: setup.moving)?.frames == 0)
        _ = try await setup.a.unfreezePort(setup.moving)
        // Handed over before the stop and read by QEMU: the guest has them; not sent on.
        #expect(setup.stopped.queued == 3)
        _ = try await setup.a.freezePort(setup.moving, destination: "host-b", guestStoppedAt: stoppedAt)
        try await Task.sleep(for: .milliseconds(200))
        #expect(await setup.b.heldFrames(of: setup.moving)?.frames == 0)
        #expect(await setup.a.counters().switch.heldFramesForwarded == 0)
        await setup.sender.close()
        await setup.a.stop()
        await setup.b.stop()
    }
}
