import Foundation
@testable import Migration
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel
import Testing

/// A tunnel's stream channels opened before QEMU connects (Protocol.md §6.3, `PredialedChannels`):
/// they open while the destination has not admitted the migration yet, say nothing until QEMU's
/// first connection claims them, then carry its stream; unclaimed, they are closed. Each test has
/// a migration id of its own: the destination's striped streams are keyed by it process-wide.
@Suite(.timeLimit(.minutes(1))) struct PredialedStreamTests {
    let f = TunnelFixtures()

    /// A destination that counts the stream channels it accepted (and those since closed) and the
    /// hellos it was asked to authorise, and admits migration `migrationID` only once `admitted` is set.
    final class Destination: Sendable {
        let migrationID = "m-" + UUID().uuidString.prefix(8)
        let opened = NIOLockedValueBox(0)
        let closed = NIOLockedValueBox(0)
        let hellos = NIOLockedValueBox(0)
        let admitted = NIOLockedValueBox(false)
        let echo: EchoUnixServer
        let listener: SecureChannelListener
        let task: Task<Void, any Error>

        init(_ f: TunnelFixtures, helloDeadline: TimeAmount = MigrationStreamAcceptor.defaultHelloDeadline) async throws {
            let qemuSocket = TunnelFixtures.tempPath("dst.sock")
            echo = try await EchoUnixServer.start(path: qemuSocket)
            let (opened, closed, hellos, admitted, migrationID) = (opened, closed, hellos, admitted, migrationID)
            listener = try await SecureChannelListener.bind(host: "127.0.0.1", port: 0, configuration: SecureChannelConfiguration(credentials: f.credentials("dst")),
                                                            logger: TunnelFixtures.logger) { session in
                guard session.peer.purpose == StreamPurpose.migration.rawValue else { return .application }
                let acceptor = MigrationStreamAcceptor.route(session, helloDeadline: helloDeadline) { peer, hello in
                    hellos.withLockedValue { $0 += 1 }
                    guard admitted.withLockedValue({ $0 }), hello.migrationID == migrationID, peer.hostID == "src" else {
                        throw SecureChannelError(.protocolViolation, "no migration \(hello.migrationID) admitted from \(peer.hostID)")
                    }
                    return qemuSocket
                }
                guard case .pipeline(let install) = acceptor else { return acceptor }
                return .pipeline { channel in
                    opened.withLockedValue { $0 += 1 }
                    channel.closeFuture.whenComplete { _ in closed.withLockedValue { $0 += 1 } }
                    try install(channel)
                }
            }
            let listener = listener
            task = Task { try await listener.run { _ in } }
        }

        var port: Int { listener.localAddress!.port! }

        func stop() async {
            task.cancel()
            await listener.close()
            try? await echo.channel.close() // the test's QEMU stand-in; closing it twice is harmless
        }
    }

    func tunnel(to destination: Destination, stripes: Int, padding: Int = 0) async throws -> OutgoingStreamTunnel {
        try await tunnel(to: destination, opened: channels(to: destination, count: stripes, padding: padding))
    }

    func channels(to destination: Destination, count: Int, padding: Int = 0, filler: Int = 0) -> PredialedChannels {
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        policy.handshakeFillerBytes = filler
        let configuration = SecureChannelConfiguration(credentials: f.credentials("src"), policy: policy)
        return PredialedChannels(count: count, host: "127.0.0.1", port: destination.port, configuration: configuration,
                                 paddingBytes: padding, congestionControl: .default, logger: TunnelFixtures.logger)
    }

    func tunnel(to destination: Destination, opened: PredialedChannels) async throws -> OutgoingStreamTunnel {
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let configuration = SecureChannelConfiguration(credentials: f.credentials("src"), policy: policy)
        return try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: destination.migrationID, host: "127.0.0.1", port: destination.port,
            congestionControl: .default, predialed: opened, configuration: configuration, logger: TunnelFixtures.logger)
    }

    /// Waits (bounded) until `condition` holds.
    func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test(arguments: [1, 4]) func channelsOpenBeforeAdmissionAndCarryTheFirstStreamOnceQEMUConnects(stripes: Int) async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        let tunnel = try await tunnel(to: destination, stripes: stripes)
        // Before the prepare is answered: every channel is open, and none has said which migration.
        try await eventually("\(stripes) channels open") { destination.opened.withLockedValue { $0 } == stripes }
        try await Task.sleep(for: .milliseconds(100))
        #expect(destination.hellos.withLockedValue { $0 } == 0, "a channel opened ahead spoke before QEMU connected")
        #expect(destination.closed.withLockedValue { $0 } == 0)

        destination.admitted.withLockedValue { $0 = true }
        let payload = (0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let back = try await StreamTunnelTests().sourceQEMU(path: tunnel.socketPath, bytes: payload)
        #expect(back == payload)
        #expect(destination.echo.received.withLockedValue { $0 } == payload.count)
        // The first stream went on the channels opened ahead: no other was dialled for it.
        #expect(destination.opened.withLockedValue { $0 } == stripes)
        #expect(destination.hellos.withLockedValue { $0 } == stripes)

        // A second QEMU connection dials its own.
        let second = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        #expect(try await StreamTunnelTests().sourceQEMU(path: tunnel.socketPath, bytes: second) == second)
        #expect(destination.opened.withLockedValue { $0 } == 2 * stripes)
        #expect(tunnel.streamsOpened == 2 && tunnel.failures.isEmpty, "\(tunnel.failures)")
        await tunnel.close()
    }

    /// At distance a waiting channel pads its window open (Protocol.md §6.3): padding flows while
    /// nobody has claimed it, the destination's side hears nothing of it (no hello, no byte to
    /// QEMU), and it stops when QEMU's connection claims the channels, whose stream is intact.
    /// With filler after message 1 first (Protocol.md §3.2), as at distance to a host that accepts it.
    @Test(arguments: [(1, 0), (4, 0), (4, 13 << 10)]) func waitingChannelsPadUntilClaimedAndTheStreamIsIntact(stripes: Int, filler: Int) async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        // A budget the loopback cannot spend before the claim: padding runs until then.
        let opened = channels(to: destination, count: stripes, padding: 1 << 40, filler: filler)
        let tunnel = try await tunnel(to: destination, opened: opened)
        try await eventually("padding flows") { opened.paddingSent >= stripes * (1 << 20) }
        #expect(destination.hellos.withLockedValue { $0 } == 0 && destination.closed.withLockedValue { $0 } == 0)
        #expect(destination.echo.received.withLockedValue { $0 } == 0)

        destination.admitted.withLockedValue { $0 = true }
        let payload = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 11) }
        #expect(try await StreamTunnelTests().sourceQEMU(path: tunnel.socketPath, bytes: payload) == payload)
        #expect(destination.echo.received.withLockedValue { $0 } == payload.count)
        #expect(destination.opened.withLockedValue { $0 } == stripes && destination.hellos.withLockedValue { $0 } == stripes)
        let after = opened.paddingSent
        try await Task.sleep(for: .milliseconds(200))
        #expect(opened.paddingSent == after, "padding went on after QEMU claimed the channels")
        #expect(tunnel.failures.isEmpty, "\(tunnel.failures)")
        await tunnel.close()
    }

    @Test func paddingStopsAtItsBudgetAndIsNoneOnALAN() async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        let opened = channels(to: destination, count: 2, padding: 100_000)
        try await eventually("each channel spends its budget") { opened.paddingSent == 200_000 }
        try await Task.sleep(for: .milliseconds(100))
        #expect(opened.paddingSent == 200_000)
        opened.close()
        // The budget: twice a stripe's share of the product; none under the distance threshold.
        #expect(PredialedChannels.paddingBudget(rttMicroseconds: 150_000, count: 8, rateBytesPerSecond: nil) == 2 * 4_687_500 / 8)
        #expect(PredialedChannels.paddingBudget(rttMicroseconds: 5_000, count: 1, rateBytesPerSecond: nil) == 0)
        #expect(PredialedChannels.paddingBudget(rttMicroseconds: 10_000_000, count: 1, rateBytesPerSecond: .max) == 2 * (128 << 20))
        // Filler likewise: at distance only.
        #expect(PredialedChannels.fillerBytes(rttMicroseconds: 150_000) == 13 << 10)
        #expect(PredialedChannels.fillerBytes(rttMicroseconds: 5_000) == 0)
    }

    /// A destination closes a stream channel that sends no hello in time (Protocol.md §6.3),
    /// padding or not: an authenticated peer cannot hold channels open for nothing.
    @Test func aChannelWithoutItsHelloIsClosedAfterTheDeadline() async throws {
        let destination = try await Destination(f, helloDeadline: .milliseconds(300))
        defer { Task { await destination.stop() } }
        let opened = channels(to: destination, count: 2, padding: 1 << 40)
        try await eventually("2 channels open") { destination.opened.withLockedValue { $0 } == 2 }
        try await eventually("both closed by the destination") { destination.closed.withLockedValue { $0 } == 2 }
        #expect(destination.hellos.withLockedValue { $0 } == 0)
        let sent = opened.paddingSent
        try await Task.sleep(for: .milliseconds(100))
        #expect(opened.paddingSent == sent, "padding went on after the destination closed the channel")
        opened.close()
    }

    @Test func channelsOpenedBeforeTheTunnelSetItsStripeCount() async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let configuration = SecureChannelConfiguration(credentials: f.credentials("src"), policy: policy)
        // Opened with the checklist, before the migration (and its id) exists.
        let opened = PredialedChannels(count: 3, host: "127.0.0.1", port: destination.port, configuration: configuration, congestionControl: .default, logger: TunnelFixtures.logger)
        try await eventually("3 channels open") { destination.opened.withLockedValue { $0 } == 3 }
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: destination.migrationID, host: "127.0.0.1", port: destination.port,
            stripes: 1, congestionControl: .default, predialed: opened, configuration: configuration, logger: TunnelFixtures.logger)
        #expect(tunnel.stripes == 3)
        destination.admitted.withLockedValue { $0 = true }
        let payload = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 5) }
        #expect(try await StreamTunnelTests().sourceQEMU(path: tunnel.socketPath, bytes: payload) == payload)
        #expect(destination.opened.withLockedValue { $0 } == 3 && destination.hellos.withLockedValue { $0 } == 3)
        await tunnel.close()
    }

    @Test func channelsNobodyClaimedAreClosedWithTheTunnel() async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        let tunnel = try await tunnel(to: destination, stripes: 3)
        try await eventually("3 channels open") { destination.opened.withLockedValue { $0 } == 3 }
        // The prepare was refused: the run closes its tunnel, and with it the channels opened ahead.
        await tunnel.close()
        try await eventually("3 channels closed") { destination.closed.withLockedValue { $0 } == 3 }
        #expect(destination.hellos.withLockedValue { $0 } == 0)
        #expect(destination.echo.received.withLockedValue { $0 } == 0)
    }

    @Test(arguments: [1, 4]) func aChannelOpenedAheadForAMigrationNeverAdmittedCarriesNothing(stripes: Int) async throws {
        let destination = try await Destination(f)
        defer { Task { await destination.stop() } }
        let tunnel = try await tunnel(to: destination, stripes: stripes)
        try await eventually("\(stripes) channels open") { destination.opened.withLockedValue { $0 } == stripes }
        // Not admitted (say the destination restarted and forgot it): the hello is refused and
        // QEMU's connection is closed with nothing delivered.
        let back = try await StreamTunnelTests().sourceQEMU(path: tunnel.socketPath, bytes: [UInt8](repeating: 9, count: 1 << 16))
        #expect(back.isEmpty)
        #expect(destination.echo.received.withLockedValue { $0 } == 0)
        #expect(destination.hellos.withLockedValue { $0 } >= 1)
        await tunnel.close()
    }
}
