import NIOCore
import NIOPosix

/// The UDP side of a relay: each client address gets its own upstream socket (a flow), so the
/// target's answers find their way back through the link to the client.
enum UDPRelay {
    /// Receive buffer of the relay's sockets: the emulated queue decides what is dropped, so
    /// the kernel should not drop first while the relay's loop is busy.
    static let socketBufferBytes: SocketOptionValue = 4 << 20

    static func listen(host: String, port: Int, route: RelayRoute) async throws -> any Channel {
        try await DatagramBootstrap(group: route.link.eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: UDPRelay.socketBufferBytes)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPFrontHandler(route: route))
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// Reads the relay's listening socket and hands each datagram to its client's flow.
final class UDPFrontHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    /// Flows idle this long are forgotten once the table is large.
    static let idleFlowLifetime: Int64 = 120_000_000_000
    static let flowTableSoftLimit = 1024

    private let route: RelayRoute
    private var flows: [SocketAddress: UDPFlow] = [:]

    init(route: RelayRoute) {
        self.route = route
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let flow: UDPFlow
        if let existing = flows[envelope.remoteAddress] {
            flow = existing
        } else {
            forgetIdleFlows()
            flow = UDPFlow(front: context.channel, client: envelope.remoteAddress, route: route)
            flows[envelope.remoteAddress] = flow
        }
        flow.forward(envelope.data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        for flow in flows.values { flow.close() }
        flows = [:]
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An ICMP error for an earlier datagram (port unreachable): UDP carries on, so do we.
    }

    private func forgetIdleFlows() {
        guard flows.count >= Self.flowTableSoftLimit else { return }
        let now = LinkClock.now()
        for (address, flow) in flows where now - flow.lastUsed > Self.idleFlowLifetime {
            flow.close()
            flows[address] = nil
        }
    }
}

@available(*, unavailable)
extension UDPFrontHandler: Sendable {}

/// One client's datagrams to the target and the target's answers back.
final class UDPFlow {
    private let front: any Channel
    private let client: SocketAddress
    private let route: RelayRoute
    private let unshaped: Bool
    private let upstream: EventLoopFuture<any Channel>
    private let outbound: DeliveryQueue
    private let inbound: DeliveryQueue
    private(set) var lastUsed: Int64

    init(front: any Channel, client: SocketAddress, route: RelayRoute) {
        self.front = front
        self.client = client
        self.route = route
        unshaped = route.isUnshaped(client)
        outbound = DeliveryQueue(eventLoop: front.eventLoop)
        inbound = DeliveryQueue(eventLoop: front.eventLoop)
        lastUsed = LinkClock.now()
        let wildcard = route.target.protocol == .inet6 ? "::" : "0.0.0.0"
        let answers = NIOLoopBoundBox<UDPFlow?>.makeEmptyBox(eventLoop: front.eventLoop)
        upstream = DatagramBootstrap(group: front.eventLoop)
            .channelOption(.socketOption(.so_rcvbuf), value: UDPRelay.socketBufferBytes)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UDPUpstreamHandler(flow: answers))
                }
            }
            .bind(host: wildcard, port: 0)
        answers.value = self
    }

    /// A datagram from the client, toward the target.
    func forward(_ data: ByteBuffer) {
        lastUsed = LinkClock.now()
        guard let at = verdict(route.toward, size: data.readableBytes) else { return }
        let target = route.target
        let upstream = self.upstream
        outbound.push(at: at) {
            upstream.whenSuccess { channel in
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: data), promise: nil)
            }
        }
    }

    /// A datagram from the target, back to the client.
    func answer(_ data: ByteBuffer) {
        lastUsed = LinkClock.now()
        guard let at = verdict(route.toward.reversed, size: data.readableBytes) else { return }
        let front = self.front
        let client = self.client
        inbound.push(at: at) {
            front.writeAndFlush(AddressedEnvelope(remoteAddress: client, data: data), promise: nil)
        }
    }

    func close() {
        outbound.close()
        inbound.close()
        upstream.whenSuccess { $0.close(promise: nil) }
    }

    private func verdict(_ direction: EmulatedLink.Direction, size: Int) -> Int64? {
        let now = LinkClock.now()
        if unshaped { return now }
        switch route.link.shapers.value.arrive(direction, size: size, kind: .datagram, now: now) {
        case .deliver(let at): return at
        case .drop: return nil
        }
    }
}

/// Hands the target's answers on an upstream socket to the flow.
final class UDPUpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let flow: NIOLoopBoundBox<UDPFlow?>

    init(flow: NIOLoopBoundBox<UDPFlow?>) {
        self.flow = flow
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        flow.value?.answer(unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An ICMP error for an earlier datagram (the target is not listening yet): carry on.
    }
}

@available(*, unavailable)
extension UDPUpstreamHandler: Sendable {}
