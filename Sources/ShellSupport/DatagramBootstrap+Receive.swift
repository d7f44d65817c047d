public import NIOCore
public import NIOPosix

extension DatagramBootstrap {
    /// A bootstrap for a datagram socket whose reads go to `onDatagram`, on its event loop.
    ///
    /// Every read gets a fixed buffer of at least `receiveCapacity` bytes (NIO rounds storage
    /// up to a power of two): size it above the largest valid datagram, so a larger one shows
    /// as oversized (the kernel truncates to the buffer) instead of being cut to a
    /// valid-looking size. With `vectorReadCount`, one read
    /// takes that many datagrams and splits ONE buffer evenly between them, so the capacity is
    /// multiplied by it. Vector reads only for sockets whose senders always have an address
    /// (UDP): SwiftNIO's vector read traps on a datagram from an unnamed unix socket.
    ///
    /// Set socket options and bind (`bind(host:port:)` or `withBoundSocket(_:)`) on the result.
    public static func receiving(
        on eventLoop: any EventLoop, receiveCapacity: Int, vectorReadCount: Int? = nil, maxMessagesPerRead: Int? = nil,
        onDatagram: @escaping @Sendable (ByteBuffer, SocketAddress) -> Void, onClose: @escaping @Sendable () -> Void = {}
    ) -> DatagramBootstrap {
        var bootstrap = DatagramBootstrap(group: eventLoop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: receiveCapacity * (vectorReadCount ?? 1)))
        if let maxMessagesPerRead { bootstrap = bootstrap.channelOption(.maxMessagesPerRead, value: UInt(maxMessagesPerRead)) }
        if let vectorReadCount { bootstrap = bootstrap.channelOption(.datagramVectorReadMessageCount, value: vectorReadCount) }
        return bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(DatagramReceiveHandler(onDatagram: onDatagram, onClose: onClose))
            }
        }
    }
}
