public import NIOCore

/// Joins two channels into one bidirectional byte pipe with backpressure: what one reads, the
/// other writes; when the writer's socket backs up, the reader stops reading until it drains;
/// when either side closes, so does the other. One instance sits at the end of each pipeline.
///
/// Both channels MUST share an event loop (the glue calls across them synchronously).
public final class GlueHandler {
    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Bytes this side has passed to its partner.
    public private(set) var bytesForwarded: UInt64 = 0

    private init() {}

    /// Two handlers glued to each other; add one to each channel's pipeline.
    public static func matchedPair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler(), b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    private func partnerWrite(_ data: ByteBuffer) { context?.write(NIOAny(data), promise: nil) }
    private func partnerFlush() { context?.flush() }
    private func partnerWriteEOF() { context?.close(mode: .output, promise: nil) }
    /// The partner's side ended: close this side too, but only after everything already
    /// written here has gone out (a plain close would discard pending writes: the end of the
    /// stream, which QEMU needs).
    private func partnerCloseFull() {
        guard let context else { return }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
}

@available(*, unavailable)
extension GlueHandler: Sendable {}

extension GlueHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        bytesForwarded &+= UInt64(bytes.readableBytes)
        partner?.partnerWrite(bytes)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerCloseFull()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            partner?.partnerWriteEOF() // half-close travels through
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        // Read only while the partner can take more; otherwise remember and read when it drains.
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
