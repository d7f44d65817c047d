public import Logging
public import NIOCore
public import NIOPosix

/// An authenticated, encrypted connection: the handshake is done, `peer` is proven, and
/// `channel` reads and writes application bytes (sealed and opened by `SecureChannelHandler`).
/// Reading from `channel.inbound` throws a `SecureChannelError` if the channel fails.
public struct SecureConnection: Sendable {
    /// Keys, cipher and the proven peer.
    public let session: ChannelSession
    /// The application byte stream.
    public let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let handler: NIOLoopBound<SecureChannelHandler>

    /// Why the channel failed, if it did. After a failure, writes fail with NIO's generic
    /// "I/O on closed channel"; this is the reason that names the cause.
    public func failureReason() async -> SecureChannelError? {
        try? await channel.channel.eventLoop.submit { handler.value.failureReason }.get()
    }

    /// The authenticated peer.
    public var peer: PeerIdentity { session.peer }

    /// Dials `host:port`, runs the handshake as initiator, and returns once the responder is
    /// authenticated. Throws `SecureChannelError` on refusal (with the peer's reason when it gave one).
    public static func connect(host: String, port: Int, configuration: SecureChannelConfiguration,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               logger: Logger) async throws -> SecureConnection {
        let (channel, handshake, handlerBox) = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: SecureChannelListener.receiveAllocator)
            .channelOption(.writeBufferWaterMark, value: SecureChannelListener.writeWaterMark)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try SecureChannelHandler(role: .initiator, configuration: configuration, eventLoop: channel.eventLoop, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return (wrapped, handler.handshakeCompleted, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        do {
            let session = try await handshake.get()
            return SecureConnection(session: session, channel: channel, handler: handlerBox)
        } catch {
            try? await channel.executeThenClose { _, _ in }
            throw error
        }
    }
}

/// Accepts secure channels on a TCP port.
public struct SecureChannelListener: Sendable {
    /// Large reads let one `channelRead` carry several records, which keeps copying down.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20)
    /// Sealing happens when a write passes the handler; with NIO's default 64 KiB high mark a
    /// writer stalls until the socket has drained, so encryption and the peer's decryption take
    /// turns instead of overlapping. A few MiB in flight keeps both ends busy.
    static let writeWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1 << 20, high: 4 << 20)

    private let server: NIOAsyncChannel<(NIOAsyncChannel<ByteBuffer, ByteBuffer>, EventLoopFuture<ChannelSession>, NIOLoopBound<SecureChannelHandler>), Never>
    private let logger: Logger

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.channel.localAddress }

    /// Binds `host:port`. Handshakes are rate-limited per source address by `rateLimiter`.
    public static func bind(host: String, port: Int, configuration: SecureChannelConfiguration,
                            rateLimiter: SharedHandshakeRateLimiter = SharedHandshakeRateLimiter(),
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            logger: Logger) async throws -> SecureChannelListener {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: receiveAllocator)
            .childChannelOption(.writeBufferWaterMark, value: writeWaterMark)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try SecureChannelHandler(role: .responder(rateLimiter: rateLimiter), configuration: configuration,
                                                           eventLoop: channel.eventLoop, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return (wrapped, handler.handshakeCompleted, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        return SecureChannelListener(server: server, logger: logger)
    }

    /// Accepts connections until cancelled, calling `handle` for each authenticated one
    /// concurrently. Refused handshakes are logged with their reason and the remote address,
    /// and reported to `onRefusal` (error, remote address).
    public func run(onRefusal: @escaping @Sendable (any Error, String) -> Void = { _, _ in },
                    _ handle: @escaping @Sendable (SecureConnection) async -> Void) async throws {
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await (channel, handshake, handlerBox) in inbound {
                    group.addTask {
                        let remote = channel.channel.remoteAddress.map { "\($0)" } ?? "?"
                        do {
                            let session = try await handshake.get()
                            logger.debug("accepted secure channel", metadata: ["mesh.peer": "\(session.peer)", "mesh.remote": "\(remote)"])
                            await handle(SecureConnection(session: session, channel: channel, handler: handlerBox))
                        } catch {
                            logger.warning("refused secure channel", metadata: ["mesh.remote": "\(remote)", "mesh.reason": "\(error)"])
                            onRefusal(error, remote)
                            try? await channel.executeThenClose { _, _ in }
                        }
                    }
                }
            }
        }
    }

    /// Stops accepting.
    public func close() async {
        try? await server.channel.close()
    }
}
