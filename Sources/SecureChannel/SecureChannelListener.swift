public import Logging
public import NIOCore
public import NIOPosix
import ShellSupport

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
    /// Large reads let one `channelRead` carry several records, which keeps copying down. Set
    /// once the handshake completes: NIO keeps a connection's receive buffer between reads.
    static let receiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65_536, maximum: 1 << 20)
    /// Before authentication a connection reads into a 2 KiB buffer (handshake frames are under
    /// 1 KiB), so an unauthenticated connection holds a few KiB, not the 64 KiB a bulk read wants.
    static let handshakeReceiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 2048, maximum: 1 << 20)
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
    /// One "refused" line per close code per 10 s: a flood of refusals costs a few lines.
    private let refusalLog = SharedLogLineLimiter<CloseCode>()

    /// The bound address (useful with port 0).
    public var localAddress: SocketAddress? { server.channel.localAddress }

    /// Binds `host:port`. Handshakes are rate-limited per source address by `rateLimiter`, and
    /// the connections still in the handshake are capped per listener and per source prefix by
    /// `admission` (a connection past a cap is closed unread); `route` decides, per
    /// authenticated connection, where it goes. When descriptors run out, accepting pauses
    /// (`AcceptPauseHandler`) while open connections are served.
    public static func bind(host: String, port: Int, configuration: SecureChannelConfiguration,
                            rateLimiter: SharedHandshakeRateLimiter = SharedHandshakeRateLimiter(),
                            admission: SharedHandshakeAdmission = SharedHandshakeAdmission(),
                            group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                            logger: Logger,
                            route: @escaping @Sendable (ChannelSession) -> ChannelRoute = { _ in .application }) async throws -> SecureChannelListener {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(listener: "secure channel", logger: logger))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.recvAllocator, value: handshakeReceiveAllocator)
            .childChannelOption(.writeBufferWaterMark, value: writeWaterMark)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let remote = channel.remoteAddress.map { "\($0)" } ?? "?"
                    let prefix = SourcePrefix(channel.remoteAddress)
                    if let refusal = admission.admit(prefix) {
                        // Closed before a byte is read or a handler exists: the cheapest refusal.
                        channel.close(promise: nil)
                        let detail = switch refusal {
                        case .listenerFull: "\(admission.maxPerListener) connections already in the handshake on this listener"
                        case .prefixFull(let prefix): "\(admission.maxPerPrefix) connections from \(prefix) already in the handshake"
                        }
                        let error = SecureChannelError(.rateLimited, "\(detail); retry in a few seconds")
                        return (remote, channel.eventLoop.makeFailedFuture(error) as EventLoopFuture<Accepted>)
                    }
                    let handler = try SecureChannelHandler(role: .responder(rateLimiter: rateLimiter), configuration: configuration,
                                                           eventLoop: channel.eventLoop, logger: logger)
                    let handlerBox = NIOLoopBound(handler, eventLoop: channel.eventLoop)
                    // The handshake ends either way (the promise always completes, at the latest
                    // when the channel goes): its place under the caps is free again, once the
                    // socket is gone for a refused one (it lingers up to 500 ms after its Reject,
                    // and the caps bound those sockets too).
                    handler.handshakeCompleted.whenComplete { result in
                        if case .failure = result {
                            channel.closeFuture.whenComplete { _ in admission.release(prefix) }
                        } else {
                            admission.release(prefix)
                        }
                    }
                    // Routing runs synchronously when the handshake completes, so the handlers
                    // it installs are in place before the first application byte is delivered.
                    let accepted = handler.handshakeCompleted.flatMapThrowing { session -> Accepted in
                        // Authenticated: from now on reads are sized for records.
                        try channel.syncOptions?.setOption(.recvAllocator, value: receiveAllocator)
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
                    return (remote, accepted)
                }
            }
        return SecureChannelListener(server: server, logger: logger)
    }

    /// Accepts connections until cancelled, calling `handle` for each authenticated connection
    /// routed to the application, concurrently. Refused handshakes are reported to `onRefusal`
    /// (error, remote address) and logged with their reason and the remote address, at most one
    /// line per close code per 10 s with the count of the ones left unlogged.
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
                            let code = (error as? SecureChannelError)?.code ?? .internalError
                            if let suppressed = refusalLog.record(code) {
                                logger.warning("refused secure channel", metadata: ["mesh.remote": "\(remote)", "mesh.reason": "\(error)",
                                                                                    "log.suppressed": "\(suppressed)"])
                            }
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
