import NIOCore
import NIOPosix

/// The TCP side of a relay: every accepted connection gets its own connection to the target,
/// and the bytes of each direction cross the link as chunks (one chunk per read).
///
/// The relay splits the TCP connection, so it MUST keep the emulated path honest in the two
/// ways an end-to-end connection would see it: a chunk is handed over no earlier than its
/// verdict says (delay, rate, retransmission), and the relay stops reading from a sender while
/// the link's queue is full or while the far side does not take data (`isWritable`), so the
/// sender feels back-pressure instead of an infinite buffer.
enum TCPRelay {
    static func listen(host: String, port: Int, route: RelayRoute) async throws -> any Channel {
        try await ServerBootstrap(group: route.link.eventLoop)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { client in
                client.eventLoop.makeCompletedFuture {
                    // The target is dialled once the client's channel is active (`channelActive`): a
                    // unix-socket target connects at once, and a read asked of a channel not yet
                    // active would be lost.
                    let connection = RelayedConnection(client: client, route: route)
                    try client.pipeline.syncOperations.addHandler(RelaySideHandler(connection: connection, side: .client))
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// One relayed TCP connection: the client's channel, the target's, and a pump each way.
/// Confined to the link's event loop: not Sendable.
final class RelayedConnection {
    enum Side { case client, server }

    let route: RelayRoute
    let client: any Channel
    private var server: (any Channel)?
    private var up: StreamPump?
    private var down: StreamPump?
    private var closed = false

    init(client: any Channel, route: RelayRoute) {
        self.client = client
        self.route = route
    }

    func connectToTarget() {
        let bound = NIOLoopBound(self, eventLoop: client.eventLoop)
        ClientBootstrap(group: client.eventLoop)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { server in
                server.eventLoop.makeCompletedFuture {
                    try server.pipeline.syncOperations.addHandler(RelaySideHandler(connection: bound.value, side: .server))
                }
            }
            .connect(to: route.target)
            .whenComplete { result in
                bound.value.connected(result)
            }
    }

    private func connected(_ result: Result<any Channel, any Error>) {
        switch result {
        case .success(let server):
            guard !closed else {
                server.close(promise: nil)
                return
            }
            self.server = server
            let unshaped = route.isUnshaped(client.remoteAddress)
            let shapers = route.link.shapers
            up = StreamPump(source: client, sink: server, direction: route.toward, unshaped: unshaped, shapers: shapers) { [weak self] in self?.finished() }
            down = StreamPump(source: server, sink: client, direction: route.toward.reversed, unshaped: unshaped, shapers: shapers) { [weak self] in self?.finished() }
            up?.requestRead()
            down?.requestRead()
        case .failure:
            close()
        }
    }

    private func pump(from side: Side) -> StreamPump? { side == .client ? up : down }
    private func pump(into side: Side) -> StreamPump? { side == .client ? down : up }

    func received(_ buffer: ByteBuffer, from side: Side) { pump(from: side)?.received(buffer) }
    func readComplete(_ side: Side) { pump(from: side)?.readComplete() }
    func writabilityChanged(_ side: Side) { pump(into: side)?.requestRead() }

    /// The side sent FIN: what it sent still crosses the link, then the other side's output is
    /// shut (a half close, as the end-to-end connection would see it).
    func inputClosed(_ side: Side) {
        guard let pump = pump(from: side) else { return close() }
        pump.sourceClosed()
    }

    /// One direction has delivered everything and shut its sink's output; with both done, the
    /// connection is over.
    private func finished() {
        if up?.isFinished == true, down?.isFinished == true { close() }
    }

    /// A channel closed completely (reset, error, or our own close): nothing more can cross.
    func inactive(_ side: Side) {
        close()
    }

    func close() {
        guard !closed else { return }
        closed = true
        up?.stop()
        down?.stop()
        client.close(promise: nil)
        server?.close(promise: nil)
    }
}

/// One direction of a relayed connection: reads chunks from `source` while the link accepts
/// them, and writes each to `sink` at its delivery time.
final class StreamPump {
    /// Bytes read but not yet delivered, beyond which the pump stops reading even on an
    /// unlimited link (memory bound; a 10 s delay at 3 GB/s would otherwise hold 30 GB).
    static let maxPendingBytes = 64 << 20

    private let source: any Channel
    private let sink: any Channel
    private let direction: EmulatedLink.Direction
    private let unshaped: Bool
    private let shapers: NIOLoopBoundBox<ShaperPair>
    private let deliveries: DeliveryQueue
    private let onFinished: () -> Void
    private var pendingBytes = 0
    /// Everything the source sent has been written to the sink and its output shut.
    private(set) var isFinished = false
    private var reading = false
    private var sourceDone = false
    private var retry: Scheduled<Void>?
    /// The last write handed to `sink`: the connection closes only once it has completed, so
    /// a close never discards bytes NIO still holds for the kernel.
    private var lastWrite: EventLoopFuture<Void>?

    init(source: any Channel, sink: any Channel, direction: EmulatedLink.Direction, unshaped: Bool,
         shapers: NIOLoopBoundBox<ShaperPair>, onFinished: @escaping () -> Void) {
        self.source = source
        self.sink = sink
        self.direction = direction
        self.unshaped = unshaped
        self.shapers = shapers
        self.onFinished = onFinished
        deliveries = DeliveryQueue(eventLoop: source.eventLoop)
    }

    func requestRead() {
        guard !reading, !sourceDone, sink.isWritable, pendingBytes < Self.maxPendingBytes else { return }
        let now = LinkClock.now()
        if !unshaped, !shapers.value.acceptsStreamData(direction, now: now) {
            scheduleRetry()
            return
        }
        reading = true
        source.read()
    }

    func received(_ buffer: ByteBuffer) {
        let size = buffer.readableBytes
        let now = LinkClock.now()
        let at: Int64
        if unshaped {
            at = now
        } else {
            switch shapers.value.arrive(direction, size: size, kind: .stream, now: now) {
            case .deliver(let instant): at = instant
            case .drop: preconditionFailure("a stream chunk is never dropped (LinkShaper.arrive)") // the core's contract
            }
        }
        pendingBytes += size
        let sink = self.sink
        deliveries.push(at: at) { [weak self] in
            let written = sink.writeAndFlush(buffer)
            guard let self else { return }
            self.lastWrite = written
            self.pendingBytes -= size
            self.finishIfDrained()
            self.requestRead()
        }
    }

    func readComplete() {
        reading = false
        requestRead()
    }

    func sourceClosed() {
        sourceDone = true
        finishIfDrained()
    }

    func stop() {
        retry?.cancel()
        retry = nil
        deliveries.close()
    }

    private func finishIfDrained() {
        guard sourceDone, deliveries.count == 0, !isFinished else { return }
        isFinished = true
        let sink = self.sink
        let onFinished = self.onFinished
        let written = lastWrite ?? sink.eventLoop.makeSucceededVoidFuture()
        written.whenComplete { _ in
            sink.close(mode: .output, promise: nil)
            onFinished()
        }
    }

    private func scheduleRetry() {
        guard retry == nil else { return }
        let at = shapers.value.nextDeparture(direction) ?? (LinkClock.now() + 1_000_000)
        let bound = NIOLoopBound(self, eventLoop: source.eventLoop)
        retry = source.eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, at)))) {
            bound.value.retry = nil
            bound.value.requestRead()
        }
    }
}

/// Feeds one side's channel events to its connection.
final class RelaySideHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let connection: RelayedConnection
    private let side: RelayedConnection.Side

    init(connection: RelayedConnection, side: RelayedConnection.Side) {
        self.connection = connection
        self.side = side
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client { connection.connectToTarget() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), from: side)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.readComplete(side)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.writabilityChanged(side)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.inactive(side)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            connection.inputClosed(side)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset or a refused write: the relayed connection ends as the real one would.
        connection.close()
    }
}

@available(*, unavailable)
extension RelaySideHandler: Sendable {}
