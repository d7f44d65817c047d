import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Destination side of a striped stream (Protocol.md §6.14): the stripes of one QEMU connection
/// (one secure channel each, on whatever event loops their listener gave them) feed one join,
/// which connects once to the QEMU socket and writes the records to it strictly in sequence order
/// (`StripeReorder`). A stripe running ahead is not read until the records before it arrived; all
/// are held while QEMU's socket is full. The stream ends complete when every stripe closed orderly
/// with nothing missing; any error, gap or early end closes QEMU's connection at once, so QEMU sees
/// a cut stream (it never receives a byte out of order). When QEMU closes its end, every stripe
/// closes. QEMU's return path goes back on stripe 0.
final class StripedStreamJoin {
    private let key: String
    private let loop: any EventLoop
    private var reorder: StripeReorder<ByteBuffer>
    private var stripes: [(any Channel)?]
    private var paused: [Bool]
    private var qemu: (any Channel)?
    private var qemuBlocked = false
    private var waiting: [ByteBuffer] = []
    private var returning: [ByteBuffer] = []
    private var done = false

    private init(key: String, stripeCount: Int, loop: any EventLoop) {
        self.key = key
        self.loop = loop
        reorder = StripeReorder(stripeCount: stripeCount, stripeLimit: StreamStriping.stripeReorderLimit)
        stripes = Array(repeating: nil, count: stripeCount)
        paused = Array(repeating: false, count: stripeCount)
    }

    /// The join for `key`, made on the calling event loop (and connected to `socketPath`) when it
    /// is the first stripe's; nil when a join for `key` exists with another stripe count.
    static func join(key: String, stripeCount: Int, socketPath: String, on loop: any EventLoop) -> StripeJoinHandle? {
        let (handle, created) = registry.withLockedValue { joins -> (StripeJoinHandle?, Bool) in
            if let existing = joins[key] { return (existing.stripeCount == stripeCount ? existing : nil, false) }
            // A stripe of a stream that already ended: QEMU may still listen (multifd), and a
            // second connection would hand it a stream from the middle.
            if ended.withLockedValue({ $0.contains(key) }) { return (nil, false) }
            let handle = StripeJoinHandle(join: StripedStreamJoin(key: key, stripeCount: stripeCount, loop: loop), stripeCount: stripeCount, loop: loop)
            joins[key] = handle
            return (handle, true)
        }
        if created, let handle { handle.join.value.connect(socketPath) }
        return handle
    }

    private static let registry = NIOLockedValueBox<[String: StripeJoinHandle]>([:])
    /// Keys of joins that ended, newest last, so a late stripe is refused (bounded: the oldest go).
    private static let ended = NIOLockedValueBox<[String]>([])
    private static let endedKept = 1_024

    /// Removes this join from the registry and remembers that its stream ended.
    private func retire() {
        Self.registry.withLockedValue { _ = $0.removeValue(forKey: key) }
        Self.ended.withLockedValue { keys in
            keys.append(key)
            if keys.count > Self.endedKept { keys.removeFirst(keys.count - Self.endedKept) }
        }
    }

    private func connect(_ socketPath: String) {
        ClientBootstrap(group: loop)
            .connect(unixDomainSocketPath: socketPath)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let qemu):
                    guard !self.done else { return qemu.close(promise: nil) }
                    do { try qemu.pipeline.syncOperations.addHandler(JoinQEMUEnd(join: self)) } catch {
                        qemu.close(promise: nil)
                        return self.fail()
                    }
                    self.qemu = qemu
                    let waiting = self.waiting
                    self.waiting = []
                    self.deliver(waiting)
                    if self.reorder.complete { self.finish() }
                case .failure:
                    self.fail()
                }
            }
    }

    func attach(_ index: Int, _ channel: any Channel) {
        guard !done else { return channel.close(promise: nil) } // after the end
        guard stripes[index] == nil else {
            // The same stripe twice: its records would mix with the first's. A violation: the
            // stream fails (QEMU sees a cut), it is never delivered out of order.
            channel.close(promise: nil)
            return fail()
        }
        stripes[index] = channel
        if index == 0, !returning.isEmpty {
            for bytes in returning { channel.write(bytes, promise: nil) }
            channel.flush()
            returning = []
        }
    }

    func receive(_ index: Int, _ records: [StreamStriping.Record]) {
        guard !done else { return }
        var ready: [ByteBuffer] = []
        do {
            for record in records {
                ready += try reorder.receive(stripe: index, sequence: record.sequence, payload: record.payload, bytes: record.payload.readableBytes)
            }
        } catch {
            return fail()
        }
        if reorder.overLimit(index), !paused[index] { setPaused(index, true) }
        deliver(ready)
        resumeWhatCan()
    }

    func ended(_ index: Int, orderly: Bool) {
        guard !done else { return }
        guard orderly else { return fail() }
        do { try reorder.end(stripe: index) } catch { return fail() }
        if reorder.complete, qemu != nil { finish() }
    }

    func qemuWritabilityChanged(_ writable: Bool) {
        qemuBlocked = !writable
        if writable {
            resumeWhatCan()
        } else {
            // NIO reports this from inside `qemu.write` (before `deliver` could look): every
            // stripe stops being read here, or what they bring piles up in QEMU's pending writes.
            for index in stripes.indices where !paused[index] { setPaused(index, true) }
        }
    }

    func qemuReturned(_ bytes: ByteBuffer) {
        if let first = stripes[0] { first.writeAndFlush(bytes, promise: nil) } else { returning.append(bytes) }
    }

    /// QEMU closed its end (it has the stream, or gave up): every stripe closes orderly.
    func qemuClosed() {
        guard !done else { return }
        done = true
        for stripe in stripes { stripe?.close(promise: nil) }
        retire()
    }

    private func deliver(_ payloads: [ByteBuffer]) {
        guard !payloads.isEmpty else { return }
        guard let qemu else { return waiting += payloads }
        for payload in payloads { qemu.write(payload, promise: nil) }
        qemu.flush()
        if !qemu.isWritable {
            qemuBlocked = true
            for index in stripes.indices where !paused[index] { setPaused(index, true) }
        }
    }

    private func resumeWhatCan() {
        guard !qemuBlocked else { return }
        for index in stripes.indices where paused[index] && reorder.canResume(index) { setPaused(index, false) }
    }

    private func setPaused(_ index: Int, _ pause: Bool) {
        paused[index] = pause
        stripes[index]?.setOption(ChannelOptions.autoRead, value: !pause).whenComplete { _ in }
    }

    /// Every record is written: QEMU's connection closes after them, so QEMU reads to the end.
    private func finish() {
        guard let qemu else { return }
        qemu.writeAndFlush(qemu.allocator.buffer(capacity: 0)).whenComplete { _ in qemu.close(promise: nil) }
    }

    /// The stream cannot be delivered whole: QEMU's connection and every stripe close at once.
    private func fail() {
        guard !done else { return }
        done = true
        qemu?.close(promise: nil)
        for stripe in stripes { stripe?.close(promise: nil) }
        retire()
    }
}

@available(*, unavailable)
extension StripedStreamJoin: Sendable {}

/// A join as other event loops reach it: every call hops to the join's loop.
final class StripeJoinHandle: Sendable {
    let join: NIOLoopBound<StripedStreamJoin>
    let stripeCount: Int
    let loop: any EventLoop

    fileprivate init(join: StripedStreamJoin, stripeCount: Int, loop: any EventLoop) {
        self.join = NIOLoopBound(join, eventLoop: loop)
        self.stripeCount = stripeCount
        self.loop = loop
    }

    func attach(_ index: Int, _ channel: any Channel) { loop.execute { self.join.value.attach(index, channel) } }
    func receive(_ index: Int, _ records: [StreamStriping.Record]) { loop.execute { self.join.value.receive(index, records) } }
    func ended(_ index: Int, orderly: Bool) { loop.execute { self.join.value.ended(index, orderly: orderly) } }
}

/// QEMU's end of a join: writability, the return path and the close go to the join.
private final class JoinQEMUEnd: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var join: StripedStreamJoin?

    init(join: StripedStreamJoin) { self.join = join }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { join?.qemuReturned(unwrapInboundIn(data)) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        join?.qemuWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let join = self.join
        self.join = nil
        join?.qemuClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

@available(*, unavailable)
extension JoinQEMUEnd: Sendable {}

/// One stripe at the destination: reads its records and passes them to the join, in one hop per read.
final class StripeReader {
    private let index: Int
    private let handle: StripeJoinHandle
    private var buffer: ByteBuffer
    private var failed = false

    init(index: Int, handle: StripeJoinHandle, leftover: ByteBuffer) {
        self.index = index
        self.handle = handle
        buffer = leftover
    }
}

@available(*, unavailable)
extension StripeReader: Sendable {}

extension StripeReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func handlerAdded(context: ChannelHandlerContext) {
        if buffer.readableBytes > 0 { take(context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if buffer.readableBytes == 0 {
            buffer = bytes
        } else {
            buffer.writeBuffer(&bytes)
        }
        take(context)
    }

    private func take(_ context: ChannelHandlerContext) {
        var records: [StreamStriping.Record] = []
        do {
            while let record = try StreamStriping.readRecord(from: &buffer) { records.append(record) }
        } catch {
            failed = true
            context.close(promise: nil)
            return
        }
        guard !records.isEmpty else { return }
        handle.receive(index, records)
        // The slices handed on share the buffer's storage: the next cumulation starts afresh
        // with only the partial record left (appending in place would copy the whole storage).
        var rest = context.channel.allocator.buffer(capacity: buffer.readableBytes)
        rest.writeBuffer(&buffer)
        buffer = rest
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failed = true
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        handle.ended(index, orderly: !failed && buffer.readableBytes == 0)
        context.fireChannelInactive()
    }
}
