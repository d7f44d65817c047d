import NIOCore

/// Hands every datagram the UDP channel reads to a closure, on the channel's event loop.
///
/// Not Sendable: created inside the channel initializer and used only on the event loop.
final class GossipDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let onDatagram: (ByteBuffer, SocketAddress) -> Void

    init(onDatagram: @escaping (ByteBuffer, SocketAddress) -> Void) {
        self.onDatagram = onDatagram
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        onDatagram(envelope.data, envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Datagram errors SwiftNIO reports without closing the channel (ECONNREFUSED after an
        // ICMP port unreachable, ENOMEM) are transient; losing a datagram is normal for gossip.
    }
}

@available(*, unavailable)
extension GossipDatagramHandler: Sendable {}
