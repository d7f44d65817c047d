import NIOCore
import NIOPosix
@testable import SecureChannel

/// A man-in-the-middle TCP proxy for tests: forwards both directions, and on the way from
/// client to server it can tamper with, replay, reorder or cut record frames.
struct FrameProxy: Sendable {
    enum Attack: Sendable {
        case none
        /// Flip a ciphertext bit in the n-th client record.
        case tamper(Int)
        /// Send the n-th client record twice.
        case replay(Int)
        /// Swap client records n and n+1.
        case reorder(Int)
        /// Forward client records up to (not including) n, then cut both connections.
        case truncate(Int)

        var isReplay: Bool { if case .replay = self { return true } else { return false } }
    }

    let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    var port: Int { server.channel.localAddress!.port! }

    static func start(targetPort: Int, attack: Attack) async throws -> (FrameProxy, Task<Void, any Error>) {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let task = Task {
            try await server.executeThenClose { inbound in
                for try await client in inbound {
                    let upstream = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .connect(host: "127.0.0.1", port: targetPort) { channel in
                            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
                        }
                    Task { await pump(client: client, upstream: upstream, attack: attack) }
                }
            }
        }
        return (FrameProxy(server: server), task)
    }

    private static func pump(client: NIOAsyncChannel<ByteBuffer, ByteBuffer>, upstream: NIOAsyncChannel<ByteBuffer, ByteBuffer>, attack: Attack) async {
        try? await client.executeThenClose { clientIn, clientOut in
            try await upstream.executeThenClose { upIn, upOut in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await bytes in upIn { try await clientOut.write(bytes) }
                        throw CancellationError()
                    }
                    group.addTask {
                        var buffer = ByteBuffer()
                        var recordIndex = 0
                        var held: ByteBuffer?
                        for try await var bytes in clientIn {
                            buffer.writeBuffer(&bytes)
                            while buffer.readableBytes >= 4, let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                                  buffer.readableBytes >= 4 + Int(length) {
                                var frame = buffer.readSlice(length: 4 + Int(length))!
                                guard frame.getInteger(at: frame.readerIndex + 4, as: UInt8.self) == FrameType.record.rawValue else {
                                    try await upOut.write(frame); continue
                                }
                                defer { recordIndex += 1 }
                                switch attack {
                                case .tamper(let n) where n == recordIndex:
                                    let last = frame.writerIndex - 1
                                    frame.setInteger(frame.getInteger(at: last, as: UInt8.self)! ^ 0x01, at: last)
                                    try await upOut.write(frame)
                                case .replay(let n) where n == recordIndex:
                                    try await upOut.write(frame)
                                    try await upOut.write(frame)
                                case .reorder(let n) where n == recordIndex:
                                    held = frame
                                case .reorder(let n) where n + 1 == recordIndex:
                                    try await upOut.write(frame)
                                    if let h = held { try await upOut.write(h) }
                                case .truncate(let n) where recordIndex >= n:
                                    throw CancellationError()
                                default:
                                    try await upOut.write(frame)
                                }
                            }
                        }
                        throw CancellationError()
                    }
                    // When either direction ends, end both.
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}
