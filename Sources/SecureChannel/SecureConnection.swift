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
        // Nil when the event loop is gone: the caller then reports the error it already has.
        try? await channel.channel.eventLoop.submit { handler.value.failureReason }.get()
    }

    /// The authenticated peer.
    public var peer: PeerIdentity { session.peer }

    /// Dials `host:port`, runs the handshake as initiator, and returns once the responder has
    /// accepted. Throws `SecureChannelError` on refusal (with the peer's reason when it gave one).
    /// `early`: returns once this side has verified the responder and written message 3, half a
    /// round trip before the accept, so a first message written at once leaves a round trip
    /// sooner (Protocol.md §3.6); a refusal then arrives as the error of the first read.
    public static func connect(host: String, port: Int, configuration: SecureChannelConfiguration,
                               group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                               logger: Logger, early: Bool = false) async throws -> SecureConnection {
        let (channel, handshake, handlerBox) = try await bootstrap(group: group)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try SecureChannelHandler(role: .initiator, configuration: configuration, eventLoop: channel.eventLoop, logger: logger)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    let wrapped = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return (wrapped, early ? handler.keysReady : handler.handshakeCompleted, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
        do {
            let session = try await handshake.get()
            return SecureConnection(session: session, channel: channel, handler: handlerBox)
        } catch {
            try? await channel.executeThenClose { _, _ in } // closing a failed handshake; its error is thrown below
            throw error
        }
    }

    /// Dials `host:port` for a pipeline-level user (a stream tunnel, say): once the responder
    /// accepts, `install` runs on the channel's event loop, before any application byte is
    /// delivered, to add handlers after the secure channel handler. Returns the channel and session
    /// once the responder accepted.
    /// `early`: `install` runs as soon as this side has verified the responder and written
    /// message 3, so what it writes leaves half a round trip before the accept arrives (Protocol.md
    /// §3.6 allows data records right after message 3; the responder's identity is already
    /// verified, so nothing reaches anyone else). A refusal then closes the channel under the
    /// installed handlers, and this throws as it would have.
    public static func connectPipeline(host: String, port: Int, configuration: SecureChannelConfiguration,
                                       group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
                                       early: Bool = false,
                                       install: @escaping @Sendable (any Channel, ChannelSession) throws -> Void) async throws -> (any Channel, ChannelSession) {
        let (channel, handshake) = try await bootstrap(group: group)
            .connect(host: host, port: port)
            .flatMap { channel -> EventLoopFuture<(any Channel, EventLoopFuture<ChannelSession>)> in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try SecureChannelHandler(role: .initiator, configuration: configuration, eventLoop: channel.eventLoop, logger: logger)
                    let installed: EventLoopFuture<ChannelSession>
                    if early {
                        let ready = handler.keysReady.flatMapThrowing { session in try install(channel, session) }
                        installed = ready.and(handler.handshakeCompleted).map { $0.1 }
                    } else {
                        installed = handler.handshakeCompleted.flatMapThrowing { session in
                            try install(channel, session)
                            return session
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    return (channel, installed)
                }
            }.get()
        do {
            return (channel, try await handshake.get())
        } catch {
            try? await channel.close() // closing a failed handshake; its error is thrown below
            throw error
        }
    }

    private static func bootstrap(group: any EventLoopGroup) -> ClientBootstrap {
        ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: SecureChannelListener.receiveAllocator)
            .channelOption(.writeBufferWaterMark, value: SecureChannelListener.writeWaterMark)
            .connectTimeout(.seconds(10))
    }
}

/// Asks a channel's `SecureChannelHandler` to end the channel with a reason the peer will see
/// (an authenticated Close record): `channel.triggerUserOutboundEvent(SecureChannelCloseRequest(...))`.
public struct SecureChannelCloseRequest: Sendable {
    /// The reason sent to the peer.
    public let reason: SecureChannelError
    /// A request to close with `reason`.
    public init(_ reason: SecureChannelError) { self.reason = reason }
}

/// Asks a channel's `SecureChannelHandler` to send one padding record of `length` bytes
/// (Protocol.md §3.6), flushed; its promise completes once the record is handed to the kernel,
/// and fails when the peer did not say it accepts padding (`ChannelSession.peerAcceptsPadding`)
/// or the channel is not established: `channel.triggerUserOutboundEvent(SecureChannelPadding(length: n))`.
public struct SecureChannelPadding: Sendable {
    /// Bytes of padding (capped at the peer's record size).
    public let length: Int
    /// A request for `length` bytes of padding.
    public init(length: Int) { self.length = length }
}
