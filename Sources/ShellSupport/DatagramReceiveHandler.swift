public import NIOCore

/// Hands every datagram a channel reads to a closure, with its sender, on the channel's event
/// loop; and tells another closure when the channel closes.
///
/// Datagram errors SwiftNIO reports without closing the channel (ECONNREFUSED after an ICMP
/// port unreachable, ENOMEM) are transient: losing a datagram is normal for UDP, and both the
/// gossip and the overlay protocols recover from loss. They are dropped here.
///
/// Not Sendable: created inside the channel initializer and used only on the event loop.
public final class DatagramReceiveHandler: ChannelInboundHandler {
    /// Datagrams with their sender.
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let onDatagram: (ByteBuffer, SocketAddress) -> Void
    private let onClose: () -> Void

    /// A handler calling `onDatagram` for each datagram and `onClose` once the channel is inactive.
    public init(onDatagram: @escaping (ByteBuffer, SocketAddress) -> Void, onClose: @escaping () -> Void = {}) {
        self.onDatagram = onDatagram
        self.onClose = onClose
    }

    /// Hands the datagram to `onDatagram`.
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        onDatagram(envelope.data, envelope.remoteAddress)
    }

    /// Calls `onClose`, then passes the event on.
    public func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }

    /// Drops transient datagram errors (see the type's documentation).
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {}
}

@available(*, unavailable)
extension DatagramReceiveHandler: Sendable {}
