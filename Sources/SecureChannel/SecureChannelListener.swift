public import Logging
public import NIOCore
public import NIOPosix

/// What to do with an authenticated connection, decided from its session (peer and purpose).
public enum ChannelRoute: Sendable {
    /// Hand it to `SecureChannelListener.run`'s handler as a `SecureConnection`.
    case application
    /// Add handlers after the secure channel handler (runs on the event loop before any
    /// application byte is delivered); `run` never sees the connection.
    case pipeline(@Sendable (any Channel) throws -> Void)
    /// Close it, telling the peer why.
    case refuse(SecureChannelError)
}

/// Accepts secure channels on a TCP port.
public struct SecureChannelListener: Sendable {
    /// Large reads let one `channelRead` carry several records, which keeps copying down.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20)
    /// Sealing happens when a write passes the handler; with NIO's default 64 KiB high mark a
    /// writer stalls until the socket has drained, so encryption and the peer's decryption take
    /// turns instead of overlapping. A few MiB in flight keeps both ends busy.
    static let writeWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1 << 20, high: 4 << 20)

    private enum Accepted: Sendable {
        case application(SecureConnection)
        case routed
    }

    private let server: NIOAsyncChannel<(String, EventLoopFuture<Accepted>), Never>
    private let logger: Logger

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.channel.localAddress }

    /// Binds `host:port`. Handshakes are rate-limited per source address by `rateLimiter`;
    /// `route` decides, per authenticated connection, where it goes.
    public static func bind(host: String, port: Int, configuration: SecureChannelConfiguration,
                            rateLimiter: SharedHandshakeRateLimiter = SharedHandshakeRateLimiter(),
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            logger: Logger,
                            route: @escaping @Sendable (ChannelSession) -> ChannelRoute = { _ in .application }) async throws -> SecureChannelListener {
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
                    let handlerBox = NIOLoopBound(handler, eventLoop: channel.eventLoop)
                    // Routing runs synchronously when the handshake completes, so the handlers
                    // it installs are in place before the first application byte is delivered.
                    let accepted = handler.handshakeCompleted.flatMapThrowing { session -> Accepted in
                        switch route(session) {
                        case .application:
                            let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                            return .application(SecureConnection(session: session, channel: wrapped, handler: handlerBox))
                        case .pipeline(let install):
                            try install(channel)
                            return .routed
                        case .refuse(let reason):
                            channel.triggerUserOutboundEvent(SecureChannelCloseRequest(reason), promise: nil)
                            throw reason
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return (channel.remoteAddress.map { "\($0)" } ?? "?", accepted)
                }
            }
        return SecureChannelListener(server: server, logger: logger)
    }

    /// Accepts connections until cancelled, calling `handle` for each authenticated connection
    /// routed to the application, concurrently. Refused handshakes are logged with their reason
    /// and the remote address, and reported to `onRefusal` (error, remote address).
    public func run(onRefusal: @escaping @Sendable (any Error, String) -> Void = { _, _ in },
                    _ handle: @escaping @Sendable (SecureConnection) async -> Void) async throws {
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await (remote, accepted) in inbound {
                    group.addTask {
                        do {
                            switch try await accepted.get() {
                            case .application(let connection):
                                logger.debug("accepted secure channel", metadata: ["mesh.peer": "\(connection.peer)", "mesh.remote": "\(remote)"])
                                await handle(connection)
                            case .routed:
                                break
                            }
                        } catch {
                            logger.warning("refused secure channel", metadata: ["mesh.remote": "\(remote)", "mesh.reason": "\(error)"])
                            onRefusal(error, remote)
                        }
                    }
                }
            }
        }
    }

    /// Stops accepting.
    public func close() async {
        try? await server.channel.close() // best effort: already closed is closed
    }
}
