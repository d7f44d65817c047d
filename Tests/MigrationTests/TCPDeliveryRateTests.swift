#if os(Linux)
@testable import Migration
import NIOCore
import NIOPosix
import Testing

/// The kernel's delivery rate, read past the end of Glibc's `tcp_info`: a rate once data was
/// acknowledged (the handshake alone may already give one), and a closed channel reads zero
/// rather than failing.
@Suite(.timeLimit(.minutes(1))) struct TCPDeliveryRateTests {
    @Test func aConnectionThatCarriedDataReportsTheRateTheKernelMeasured() async throws {
        let loopback = try await LoopbackTCP.open()
        let client = loopback.client

        let chunk = client.allocator.buffer(repeating: 0x5a, count: 1 << 20)
        for _ in 0..<16 { try await client.writeAndFlush(chunk).get() }
        var rate: UInt64 = 0
        for _ in 0..<100 where rate == 0 {
            rate = try await TCPDeliveryRate.read(client).get()
            if rate == 0 { try await Task.sleep(for: .milliseconds(10)) }
        }
        // Loopback delivers far faster than 1 MB/s; a misread offset gives 0 or a field of another size.
        #expect(rate > 1_000_000, "delivery rate \(rate) B/s after 16 MiB over loopback")
        #expect(rate < 1_000_000_000_000, "delivery rate \(rate) B/s is no rate: the layout was misread")

        try await client.close()
        #expect(try await TCPDeliveryRate.read(client).get() == 0, "a closed channel reads 0")
        try await loopback.close()
    }
}

/// A TCP connection over loopback whose receiver drains what it is sent, for reading `TCP_INFO`.
struct LoopbackTCP {
    let group: MultiThreadedEventLoopGroup
    let server: any Channel
    let client: any Channel

    static func open() async throws -> LoopbackTCP {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { $0.eventLoop.makeSucceededVoidFuture() } // autoRead: the receiver drains what it is sent
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: server.localAddress!).get()
        return LoopbackTCP(group: group, server: server, client: client)
    }

    /// Closes the server and the group (the client is the test's to close first, or closes with them).
    func close() async throws {
        try await server.close()
        try await group.shutdownGracefully()
    }
}
#endif
