import Foundation
@testable import Migration
import NIOCore
import SecureChannel
import Testing

/// Striping one QEMU stream across several channels at distance (Protocol.md §6.14): the pure
/// reassembly, the record format, the stripe count, and a striped tunnel over real sockets.
@Suite(.timeLimit(.minutes(1))) struct StreamStripingTests {

    @Test func aStreamIsStripedOnlyAcrossADistance() {
        #expect(StreamStriping.stripes(rttMicroseconds: 0) == 1)
        #expect(StreamStriping.stripes(rttMicroseconds: 300) == 1)
        #expect(StreamStriping.stripes(rttMicroseconds: 9_999) == 1)
        #expect(StreamStriping.stripes(rttMicroseconds: 10_000) == 2)
        #expect(StreamStriping.stripes(rttMicroseconds: 40_000) == 2)
        #expect(StreamStriping.stripes(rttMicroseconds: 60_001) == 3) // 4 by round trip; W 3.75 MB holds 3 stripes of 1 MiB
        #expect(StreamStriping.stripes(rttMicroseconds: 80_000) == 4)
        #expect(StreamStriping.stripes(rttMicroseconds: 150_000) == 8)
        #expect(StreamStriping.stripes(rttMicroseconds: 200_000) == 10)
        // Past 160 ms the stream's buffer bounds it: W / 1 MiB (14.9 at 250 ms) against 13 by round trip.
        #expect(StreamStriping.stripes(rttMicroseconds: 250_000) == 13)
        #expect(StreamStriping.stripes(rttMicroseconds: 500_000) == 16)
        #expect(StreamStriping.stripes(rttMicroseconds: 2_000_000) == 16)
        // A slower link's smaller buffer: fewer (100 Mbit/s at 250 ms: W 6.25 MB, 5 stripes).
        #expect(StreamStriping.stripes(rttMicroseconds: 250_000, rateBytesPerSecond: 12_500_000) == 5)
        #expect(StreamStriping.stripes(rttMicroseconds: 20_000, rateBytesPerSecond: 1_000_000) == 2)
    }

    @Test func recordsRoundTripAndBadLengthsAreRefused() throws {
        var out = ByteBuffer()
        StreamStriping.writeRecord(sequence: 7, payload: ByteBuffer(bytes: [1, 2, 3]), into: &out)
        #expect(Array(out.readableBytesView) == [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 3, 1, 2, 3])
        var partial = out.getSlice(at: 0, length: 14)!
        #expect(try StreamStriping.readRecord(from: &partial) == nil)
        #expect(try StreamStriping.readRecord(from: &out) == .init(sequence: 7, payload: ByteBuffer(bytes: [1, 2, 3])))
        var empty = ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])
        #expect(throws: StripeError.self) { try StreamStriping.readRecord(from: &empty) }
        var huge = ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 1, 0, 0x10, 0, 1])
        #expect(throws: StripeError.self) { try StreamStriping.readRecord(from: &huge) }
    }

    @Test func recordsComeBackInOrderWhateverTheStripesInterleave() throws {
        // 200 records dealt to 5 stripes at random; each stripe is a FIFO; stripes drain at random.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var queues = Array(repeating: [UInt64](), count: 5)
            for sequence in 0..<200 as Range<UInt64> { queues[Int.random(in: 0..<5, using: &random)].append(sequence) }
            var reorder = StripeReorder<UInt64>(stripeCount: 5, stripeLimit: 1 << 30)
            var delivered: [UInt64] = []
            while queues.contains(where: { !$0.isEmpty }) {
                let stripe = queues.indices.filter { !queues[$0].isEmpty }.randomElement(using: &random)!
                let sequence = queues[stripe].removeFirst()
                delivered += try reorder.receive(stripe: stripe, sequence: sequence, payload: sequence, bytes: 10)
                if queues[stripe].isEmpty { try reorder.end(stripe: stripe) }
            }
            #expect(delivered == Array(0..<200))
            #expect(reorder.complete && reorder.held.allSatisfy { $0 == 0 })
        }
    }

    @Test func aStripeRunningAheadIsHeldAndTheAwaitedOneNeverIs() throws {
        var reorder = StripeReorder<Int>(stripeCount: 2, stripeLimit: 100)
        // Stripe 1 carries 1, 2, 3 while stripe 0's record 0 is late.
        #expect(try reorder.receive(stripe: 1, sequence: 1, payload: 1, bytes: 60).isEmpty)
        #expect(!reorder.overLimit(1))
        #expect(try reorder.receive(stripe: 1, sequence: 2, payload: 2, bytes: 60).isEmpty)
        #expect(reorder.overLimit(1) && !reorder.overLimit(0))
        #expect(try reorder.receive(stripe: 0, sequence: 0, payload: 0, bytes: 60) == [0, 1, 2])
        #expect(reorder.canResume(1) && reorder.next == 3)
    }

    @Test func duplicatesLateRecordsAndGapsAtTheEndAreRefused() throws {
        var reorder = StripeReorder<Int>(stripeCount: 2, stripeLimit: 100)
        _ = try reorder.receive(stripe: 0, sequence: 0, payload: 0, bytes: 1)
        #expect(throws: StripeError.self) { try reorder.receive(stripe: 1, sequence: 0, payload: 0, bytes: 1) }
        _ = try reorder.receive(stripe: 1, sequence: 2, payload: 2, bytes: 1)
        #expect(throws: StripeError.self) { try reorder.receive(stripe: 0, sequence: 2, payload: 2, bytes: 1) }
        #expect(throws: StripeError.self) { try reorder.receive(stripe: 2, sequence: 3, payload: 3, bytes: 1) }
        try reorder.end(stripe: 0)
        #expect(throws: StripeError.self) { try reorder.receive(stripe: 0, sequence: 1, payload: 1, bytes: 1) }
        // Record 1 never came: every stripe ending is a cut stream, not a complete one.
        #expect(throws: StripeError.self) { try reorder.end(stripe: 1) }
        #expect(!reorder.complete)
    }

    @Test func aStripedTunnelCarriesStreamsIntactInBothDirections() async throws {
        let tunnels = StreamTunnelTests()
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        let (listener, task) = try await tunnels.destination(qemuSocket: qemuSocket)
        defer { task.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: "m1", host: "127.0.0.1", port: listener.localAddress!.port!,
            stripes: 4, congestionControl: .default, configuration: SecureChannelConfiguration(credentials: tunnels.f.credentials("src"), policy: policy), logger: TunnelFixtures.logger)
        // Two concurrent streams, each striped four ways: each comes back whole and in order
        // (the destination reassembles before its QEMU reads; the echo returns on stripe 0).
        let payloads = (0..<2).map { s in (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: ($0 >> 7) &* (s + 3) &+ $0) } }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for p in payloads { group.addTask { try await tunnels.sourceQEMU(path: tunnel.socketPath, bytes: p) == p } }
            for try await same in group { #expect(same) }
        }
        #expect(tunnel.streamsOpened == 2)
        #expect(tunnel.failures.isEmpty)
        #expect(echo.received.withLockedValue { $0 } == 2 * (8 << 20))
        await tunnel.close()
    }

    /// A destination whose handshake rate limit refuses some stripes at first (several migrations'
    /// stripes at once): the refused stripes never carried a byte, so they try again, and the
    /// stream arrives whole meanwhile; nothing fails.
    @Test func stripesRefusedByTheHandshakeRateLimitTryAgainAndTheStreamArrivesWhole() async throws {
        let tunnels = StreamTunnelTests()
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        // Two handshakes at once, then 20 a second: two of four stripes are refused at first.
        let limiter = SharedHandshakeRateLimiter(HandshakeRateLimiter(ratePerSecond: 20, burst: 2))
        // Its own migration id: a stream's key stays refused once its join ended (another test's "m1").
        let (listener, task) = try await tunnels.destination(qemuSocket: qemuSocket, expectedMigration: "m-retry", rateLimiter: limiter)
        defer { task.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: "m-retry", host: "127.0.0.1", port: listener.localAddress!.port!,
            stripes: 4, congestionControl: .default, configuration: SecureChannelConfiguration(credentials: tunnels.f.credentials("src"), policy: policy), logger: TunnelFixtures.logger)
        let payload = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: ($0 >> 9) &+ $0) }
        #expect(try await tunnels.sourceQEMU(path: tunnel.socketPath, bytes: payload) == payload)
        #expect(tunnel.failures.isEmpty, "\(tunnel.failures)")
        #expect(echo.received.withLockedValue { $0 } == 8 << 20)
        await tunnel.close()
    }

    /// One stripe's connection cut mid-stream (the path failed for it alone): the stream fails,
    /// and what the destination's QEMU got before it failed (echoed back) is an exact prefix of
    /// what was sent: never a byte out of order, never a hole, and no hang waiting for the stripe.
    @Test(arguments: [1, 3]) func aCutStripeFailsTheStreamAndNothingArrivesOutOfOrder(cutConnection: Int) async throws {
        let tunnels = StreamTunnelTests()
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        // A migration id of its own: the destination's stripe joins are per process, and other
        // tests of this suite may run alongside with theirs.
        let migration = "m-cut-\(cutConnection)"
        let (listener, task) = try await tunnels.destination(qemuSocket: qemuSocket, expectedMigration: migration)
        let (proxy, proxyTask) = try await CuttingProxy.start(targetPort: listener.localAddress!.port!, cutConnection: cutConnection, cutAfter: 256 << 10)
        defer { task.cancel(); proxyTask.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        var policy = ChannelPolicy(); policy.expectedPeer = "dst"
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: migration, host: "127.0.0.1", port: proxy.port,
            stripes: 4, congestionControl: .default, configuration: SecureChannelConfiguration(credentials: tunnels.f.credentials("src"), policy: policy), logger: TunnelFixtures.logger)
        let payload = (0..<(16 << 20)).map { UInt8(truncatingIfNeeded: ($0 >> 9) &* 7 &+ $0) }
        let back = try await tunnels.sourceQEMU(path: tunnel.socketPath, bytes: payload)
        #expect(proxy.didCut)
        #expect(back.count < payload.count, "a stream with a cut stripe must not complete")
        #expect(back[...] == payload[..<back.count], "the destination got bytes out of order or with a hole")
        #expect(echo.received.withLockedValue { $0 } < payload.count)
        await tunnel.close()
    }

    @Test func aStripeOfAnUnadmittedMigrationIsRefusedAndCarriesNothing() async throws {
        let tunnels = StreamTunnelTests()
        let qemuSocket = TunnelFixtures.tempPath("dst.sock")
        let echo = try await EchoUnixServer.start(path: qemuSocket)
        let (listener, task) = try await tunnels.destination(qemuSocket: qemuSocket, expectedMigration: "other")
        defer { task.cancel(); Task { await listener.close(); try? await echo.channel.close() } }
        let tunnel = try await OutgoingStreamTunnel.start(
            socketPath: TunnelFixtures.tempPath("src.sock"), migrationID: "m1", host: "127.0.0.1", port: listener.localAddress!.port!,
            stripes: 3, congestionControl: .default, configuration: SecureChannelConfiguration(credentials: tunnels.f.credentials("src")), logger: TunnelFixtures.logger)
        let back = try await tunnels.sourceQEMU(path: tunnel.socketPath, bytes: [UInt8](repeating: 7, count: 1 << 16))
        #expect(back.isEmpty)
        #expect(echo.received.withLockedValue { $0 } == 0)
        await tunnel.close()
    }
}
