import NIOCore

/// Hands every datagram a channel reads to a closure, on the channel's event loop.
///
/// Not Sendable: created inside the channel initializer and used only on the event loop.
final class DatagramReceiveHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let onDatagram: (ByteBuffer) -> Void
    private let onClose: () -> Void

    init(onDatagram: @escaping (ByteBuffer) -> Void, onClose: @escaping () -> Void) {
        self.onDatagram = onDatagram
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onDatagram(unwrapInboundIn(data).data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Datagram read errors NIO reports without closing (ECONNREFUSED, ENOMEM) are transient.
    }
}

@available(*, unavailable)
extension DatagramReceiveHandler: Sendable {}
