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

    /// A stripe of eight at 150 ms, and a LAN stream (0.2 ms, its fixed 512 KiB): each buffer
    /// set after the handshake takes its window clamp with it.
    @Test(arguments: [(150_000, 8), (200, 1)] as [(UInt32, Int)])
    func aReceiveBufferSetAfterTheHandshakeRaisesTheWindowClamp(rtt: UInt32, share: Int) async throws {
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
        let plan = StreamBufferSizing.plan(rttMicroseconds: rtt, limits: StreamBuffers.receiveLimits, share: share, autotune: false)
        #expect(plan.setting != .autotuned)
        _ = try await StreamBuffers.apply(receiving, rttMicroseconds: rtt, sending: false, share: share, congestionControl: .system).get()
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
