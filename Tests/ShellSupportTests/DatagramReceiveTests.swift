import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ShellSupport
import Testing

@Suite struct DatagramReceiveTests {
    /// Datagrams reach the closure with their sender; one larger than the receive buffer
    /// arrives truncated to it (so a shell can tell it was oversized); close is reported.
    /// (A power-of-two capacity: NIO rounds a buffer's storage up to one.)
    @Test func deliversWithSenderTruncatesAtCapacityAndReportsClose() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let received = NIOLockedValueBox<[(Int, SocketAddress)]>([])
        let closed = NIOLockedValueBox(false)
        let receiver = try await DatagramBootstrap.receiving(on: group.next(), receiveCapacity: 128) { buffer, source in
            received.withLockedValue { $0.append((buffer.readableBytes, source)) }
        } onClose: {
            closed.withLockedValue { $0 = true }
        }.bind(host: "127.0.0.1", port: 0).get()
        let sender = try await DatagramBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
        for size in [100, 500] {
            let envelope = AddressedEnvelope(remoteAddress: receiver.localAddress!, data: ByteBuffer(repeating: 7, count: size))
            try await sender.writeAndFlush(envelope)
        }
        for _ in 0..<200 where received.withLockedValue({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let got = received.withLockedValue { $0 }
        #expect(got.map(\.0) == [100, 128])
        #expect(got.allSatisfy { $0.1.port == sender.localAddress?.port })
        try await receiver.close()
        for _ in 0..<200 where !closed.withLockedValue({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        #expect(closed.withLockedValue { $0 })
        try await sender.close()
        try await group.shutdownGracefully()
    }
}
