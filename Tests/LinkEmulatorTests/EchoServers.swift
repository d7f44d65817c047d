import NIOCore
import NIOPosix

/// Endpoints for measuring through the emulator: UDP and TCP echo, and a TCP sink that records
/// when its bytes arrive.
enum TestEndpoints {
    static func udpEcho(on group: any EventLoopGroup) async throws -> any Channel {
        try await DatagramBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPEcho()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    static func tcpEcho(on group: any EventLoopGroup) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TCPEcho()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// A TCP listener that counts bytes; `arrivals` gets (first byte, last byte, total) once the
    /// sender closes.
    static func tcpSink(on group: any EventLoopGroup, arrivals: EventLoopPromise<(Int64, Int64, Int)>) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(TCPSink(done: arrivals)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// A UDP socket that records each arrival: (time, bytes).
    static func udpSink(on group: any EventLoopGroup, log: NIOLoopBoundBox<[(Int64, Int)]>) async throws -> any Channel {
        try await DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(UDPSink(log: log)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }
}

final class UDPEcho: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(wrapOutboundOut(unwrapInboundIn(data)), promise: nil)
    }
}

final class TCPEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

final class TCPSink: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let done: EventLoopPromise<(Int64, Int64, Int)>
    var first: Int64?
    var last: Int64 = 0
    var total = 0
    init(done: EventLoopPromise<(Int64, Int64, Int)>) { self.done = done }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        if first == nil { first = now }
        last = now
        total += unwrapInboundIn(data).readableBytes
    }
    func channelInactive(context: ChannelHandlerContext) {
        done.succeed((first ?? 0, last, total))
    }
}

final class UDPSink: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let log: NIOLoopBoundBox<[(Int64, Int)]>
    init(log: NIOLoopBoundBox<[(Int64, Int)]>) { self.log = log }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        log.value.append((Int64(NIODeadline.now().uptimeNanoseconds), unwrapInboundIn(data).data.readableBytes))
    }
}
