#if os(Linux)
@testable import Migration
import NIOCore
import NIOPosix
import Testing

/// A receive buffer set on an established connection must take its window with it: the kernel
/// fixed the window clamp at the handshake from the default buffer and does not move it when
/// SO_RCVBUF changes, so a distance stream whose buffer was set early would stay at ~87 KB per
/// round trip (measured: striped streams ran at a fraction of the link).
@Suite(.timeLimit(.minutes(1))) struct StreamReceiveWindowTests {

    @Test func aDistanceReceiveBufferSetAfterTheHandshakeRaisesTheWindowClamp() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = group.next().makePromise(of: (any Channel).self)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.succeed(channel)
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: server.localAddress!).get()
        let receiving = try await accepted.futureResult.get()

        let before = try await windowClamp(of: receiving)
        // A stripe of eight at 150 ms: its share of twice the product, set (never autotuned).
        let plan = StreamBufferSizing.plan(rttMicroseconds: 150_000, limits: StreamBuffers.receiveLimits, share: 8, autotune: false)
        #expect(plan.setting != .autotuned)
        _ = try await StreamBuffers.apply(receiving, rttMicroseconds: 150_000, sending: false, share: 8).get()
        let after = try await windowClamp(of: receiving)
        #expect(before < plan.grantedBytes, "the handshake's clamp (\(before)) is already as large as the buffer: this test shows nothing here")
        #expect(after >= plan.grantedBytes / 2, "window clamp \(after) after a receive buffer of \(plan.grantedBytes) (before: \(before))")

        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }

    /// TCP_WINDOW_CLAMP as the kernel holds it now.
    private func windowClamp(of channel: any Channel) async throws -> Int {
        Int(try await channel.getOption(ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 10))).get())
    }
}
#endif
