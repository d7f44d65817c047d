import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A TCP proxy for tests that forwards every connection both ways and cuts one of them: the
/// `cutConnection`-th accepted (counting from 1) is closed in both directions once it has carried
/// `cutAfter` bytes from client to server. Stands in for a network path that fails for one
/// stripe of a striped stream while the others carry on.
struct CuttingProxy: Sendable {
    let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    let cut: NIOLockedValueBox<Bool>
    var port: Int { server.channel.localAddress!.port! }
    /// Whether the chosen connection was cut.
    var didCut: Bool { cut.withLockedValue { $0 } }

    static func start(targetPort: Int, cutConnection: Int, cutAfter: Int) async throws -> (CuttingProxy, Task<Void, any Error>) {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let cut = NIOLockedValueBox(false)
        let task = Task {
            try await server.executeThenClose { inbound in
                var accepted = 0
                for try await client in inbound {
                    accepted += 1
                    let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connect(host: "127.0.0.1", port: targetPort) { channel in
                            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                        }
                    let limit = accepted == cutConnection ? cutAfter : nil
                    Task { await pump(client: client, upstream: upstream, cutAfter: limit, cut: cut) }
                }
            }
        }
        return (CuttingProxy(server: server, cut: cut), task)
    }

    private static func pump(client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
                             cutAfter: Int?, cut: NIOLockedValueBox<Bool>) async {
        // Either side ending (or the cut) ends both: errors here are the connection going away.
        try? await client.executeThenClose { clientIn, clientOut in
            try await upstream.executeThenClose { upIn, upOut in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await bytes in upIn { try await clientOut.write(bytes) }
                        throw CancellationError()
                    }
                    group.addTask {
                        var carried = 0
                        for try await var bytes in clientIn {
                            if let cutAfter, carried + bytes.readableBytes >= cutAfter {
                                if let head = bytes.readSlice(length: cutAfter - carried) { try await upOut.write(head) }
                                cut.withLockedValue { $0 = true }
                                throw CancellationError()
                            }
                            carried += bytes.readableBytes
                            try await upOut.write(bytes)
                        }
                        throw CancellationError()
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}
