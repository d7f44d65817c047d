import NIOCore

/// Source side of a striped stream (Protocol.md §6.14): sits at the end of QEMU's connection's
/// pipeline and sends what QEMU writes as numbered records, each on a stripe (its own secure
/// channel) that can take it. It reads from QEMU only while some stripe can take more, so the
/// slowest stripe gets the fewest records. Stripes join as their handshakes finish; the stream
/// ends with QEMU's connection (every stripe closes orderly after its last record), and any
/// stripe that ends first ends the stream (QEMU sees its connection close, as with one channel).
///
/// All stripes share QEMU's connection's event loop (they are connected on it), so nothing here
/// crosses threads.
final class StripedStreamSender {
    private let stripeCount: Int
    private var stripes: [SenderStripe?]
    private var context: ChannelHandlerContext?
    private var sequence: UInt64 = 0
    private var cursor = 0
    private var pendingRead = false
    private var touched: Set<Int> = []
    private var qemuEnded = false
    private var ended = false

    init(stripeCount: Int) {
        self.stripeCount = stripeCount
        stripes = Array(repeating: nil, count: stripeCount)
    }

    /// Stripe `index` is up (its hello written): records may go on it.
    func attach(_ stripe: SenderStripe, index: Int) {
        guard !ended, !qemuEnded else {
            stripe.close() // the stream already ended: this stripe ends empty and orderly
            return
        }
        stripes[index] = stripe
        stripe.onWritable = { [weak self] in self?.stripeWritable() }
        stripe.onEnd = { [weak self] in self?.end() }
        stripe.onReturn = index == 0 ? { [weak self] bytes in self?.returnPath(bytes) } : nil
        context?.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
        stripeWritable()
    }

    /// Stripe connection failed: the stream cannot be carried whole.
    func failed() { end() }

    private func stripeWritable() {
        guard pendingRead, stripes.contains(where: { $0?.isWritable == true }) else { return }
        pendingRead = false
        context?.read()
    }

    private func returnPath(_ bytes: ByteBuffer) {
        context?.writeAndFlush(NIOAny(bytes), promise: nil)
    }

    /// Ends the stream: QEMU's connection (after what the return path already wrote) and every stripe.
    private func end() {
        guard !ended else { return }
        ended = true
        for stripe in stripes { stripe?.close() }
        if let context {
            context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    /// The stripe for the next record: the next writable one after the last used, else the next one up.
    private func nextStripe() -> Int? {
        var fallback: Int?
        for step in 1...stripeCount {
            let i = (cursor + step) % stripeCount
            guard let stripe = stripes[i] else { continue }
            if stripe.isWritable { cursor = i; return i }
            if fallback == nil { fallback = i }
        }
        if let fallback { cursor = fallback }
        return fallback
    }
}

@available(*, unavailable)
extension StripedStreamSender: Sendable {}

extension StripedStreamSender: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        while bytes.readableBytes > 0 {
            guard let index = nextStripe(), let stripe = stripes[index] else {
                // Unreachable: QEMU is read only once a stripe is attached. Fail closed.
                return end()
            }
            let payload = bytes.readSlice(length: min(bytes.readableBytes, StreamStriping.recordPayload))!
            var record = context.channel.allocator.buffer(capacity: StreamStriping.headerBytes + payload.readableBytes)
            StreamStriping.writeRecord(sequence: sequence, payload: payload, into: &record)
            sequence += 1
            stripe.write(record)
            touched.insert(index)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for index in touched { stripes[index]?.flush() }
        touched.removeAll(keepingCapacity: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        qemuEnded = true
        end()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if stripes.contains(where: { $0?.isWritable == true }) {
            context.read()
        } else {
            pendingRead = true
        }
    }
}

/// One stripe's end of the source: at the end of the stripe's secure channel pipeline.
final class SenderStripe {
    private var context: ChannelHandlerContext?
    var onWritable: (() -> Void)?
    var onEnd: (() -> Void)?
    var onReturn: ((ByteBuffer) -> Void)?

    var isWritable: Bool { context?.channel.isWritable ?? false }
    func write(_ record: ByteBuffer) { context?.write(NIOAny(record), promise: nil) }
    func flush() { context?.flush() }
    /// An orderly close: the secure channel's Close record follows every record written.
    func close() { context?.close(promise: nil) }
}

@available(*, unavailable)
extension SenderStripe: Sendable {}

extension SenderStripe: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        onWritable = nil
        onEnd = nil
        onReturn = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // QEMU's return path comes back on stripe 0 only; other stripes carry nothing back.
        onReturn?(unwrapInboundIn(data))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { onWritable?() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let end = onEnd
        onEnd = nil
        end?()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
