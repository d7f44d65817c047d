import MeshTime
import NIOCore
import NIOPosix

/// Plain TCP over loopback through the same NIO async channel machinery, without encryption:
/// the ceiling the secure channel could reach on this machine (context for the ratio).
struct PlainTCPTransfer {
    let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    func run(totalBytes: Int) async throws -> Double {
        let server = try await ServerBootstrap(group: serverGroup)
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20))
            .bind(host: "127.0.0.1", port: 0) { ch in
                ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
            }
        let port = server.channel.localAddress!.port!
        let serverTask = Task {
            try await server.executeThenClose { inbound in
                for try await child in inbound {
                    try await child.executeThenClose { input, output in
                        var received = 0
                        for try await bytes in input {
                            received += bytes.readableBytes
                            if received >= totalBytes { try await output.write(ByteBuffer(bytes: [1])); break }
                        }
                    }
                    return
                }
            }
        }
        defer { serverTask.cancel() }
        let client = try await ClientBootstrap(group: clientGroup).connect(host: "127.0.0.1", port: port) { ch in
            ch.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: ch) }
        }
        let chunk = ByteBuffer(repeating: 0xa5, count: 1 << 20)
        let mbs = try await client.executeThenClose { inbound, outbound in
            let start = ContinuousClock.now
            var inFlight: [EventLoopFuture<Void>] = []
            var sent = 0
            while sent < totalBytes {
                let n = min(chunk.readableBytes, totalBytes - sent)
                inFlight.append(client.channel.writeAndFlush(chunk.getSlice(at: 0, length: n)!))
                sent += n
                if inFlight.count >= 4 { try await inFlight.removeFirst().get() }
            }
            for f in inFlight { try await f.get() }
            var it = inbound.makeAsyncIterator()
            _ = try await it.next()
            return Double(totalBytes) / 1e6 / (ContinuousClock.now - start).inSeconds
        }
        try? await serverTask.value
        try await serverGroup.shutdownGracefully()
        try await clientGroup.shutdownGracefully()
        return mbs
    }
}
