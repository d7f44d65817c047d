public import MeshWire
public import NIOCore
import NIOPosix
public import SecureChannel

/// Destination side of a migration stream (Protocol.md §6.3, §6.7): the first thing on a
/// "migration-stream" or "nbd-stream" channel is a length-prefixed `AgentEnvelope` with a
/// `MigrationStreamHello`. The acceptor asks `authorize` where that stream goes (the unix socket
/// QEMU listens on for the incoming migration, or its NBD server for a disk mirror; the peer's
/// `purpose` says which), connects there, and glues the two, forwarding anything that followed
/// the hello. An unauthorized stream is closed with the reason.
public final class MigrationStreamAcceptor {
    /// Decides, for an authenticated peer and its hello, the QEMU socket path; throws a
    /// `SecureChannelError` (sent to the peer) to refuse.
    public typealias Authorize = @Sendable (PeerIdentity, Hostmesh_V1_MigrationStreamHello) throws -> String

    private let peer: PeerIdentity
    private let authorize: Authorize
    private var buffer = ByteBuffer()
    private var connecting = false
    private let helloDeadline: TimeAmount
    private var deadline: Scheduled<Void>?

    /// How long a stream channel may stay open without its hello (Protocol.md §6.3). A source
    /// opens its channels before QEMU connects and pads them meanwhile, for about two round
    /// trips and the destination QEMU's start; a minute is far past that, and bounds how long an
    /// authenticated peer can hold a channel open, or have this host read padding, for nothing.
    public static let defaultHelloDeadline: TimeAmount = .seconds(60)

    /// An acceptor for a channel from `peer`, closed if no hello comes within `helloDeadline`.
    public init(peer: PeerIdentity, helloDeadline: TimeAmount = defaultHelloDeadline, authorize: @escaping Authorize) {
        self.peer = peer
        self.helloDeadline = helloDeadline
        self.authorize = authorize
    }

    /// Bytes a migration stream may hold in flight per hop. The tail of the stream must drain
    /// through every buffer before the destination has the whole guest, so deep buffers add
    /// straight to the guest's pause at switchover; a few hundred KiB keep the pipe full.
    public static let streamWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 128 << 10, high: 256 << 10)
    /// The same for a disk mirror's NBD stream, whose requests are up to buf-size / 16 (1 MiB by
    /// default, 4 MiB at 64 MiB) each: with the memory stream's 256 KiB a hop stops reading after
    /// every fraction of a request and waits for the next to drain. Its tail does not add to the pause as the memory
    /// stream's does: at the switchover the mirror is synchronised, and completing it sends only
    /// what the guest wrote since.
    public static let nbdWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 1 << 20, high: 4 << 20)

    /// The write buffer watermark of a stream of `purpose` (a `StreamPurpose` raw value).
    public static func waterMark(for purpose: String) -> ChannelOptions.Types.WriteBufferWaterMark {
        purpose == StreamPurpose.nbd.rawValue ? nbdWaterMark : streamWaterMark
    }


    /// The route for a listener: stream channels (every `StreamPurpose`) get an acceptor.
    public static func route(_ session: ChannelSession, helloDeadline: TimeAmount = defaultHelloDeadline,
                             authorize: @escaping Authorize) -> ChannelRoute {
        .pipeline { channel in
            try channel.pipeline.syncOperations.addHandler(MigrationStreamAcceptor(peer: session.peer, helloDeadline: helloDeadline, authorize: authorize))
        }
    }
}

@available(*, unavailable)
extension MigrationStreamAcceptor: Sendable {}

extension MigrationStreamAcceptor: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    public func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let seconds = helloDeadline.nanoseconds / 1_000_000_000
        deadline = context.eventLoop.scheduleTask(in: helloDeadline) {
            let (acceptor, context) = bound.value
            guard !acceptor.connecting else { return }
            acceptor.refuse(context, "no stream hello within \(seconds) s of the channel opening")
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer.writeBuffer(&bytes)
        guard !connecting, let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return }
        guard length <= 4096 else { return refuse(context, "stream hello of \(length) bytes is too large") }
        guard buffer.readableBytes >= 4 + Int(length) else { return }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: Int(length))!
        // Undecodable is refused below, with the reason the peer needs.
        guard let envelope = try? Hostmesh_V1_AgentEnvelope(serializedBytes: Array(body.readableBytesView)),
              case .migrationStream(let hello)? = envelope.body else {
            return refuse(context, "the first message on a migration stream must be a MigrationStreamHello")
        }
        let socketPath: String
        do { socketPath = try authorize(peer, hello) } catch let error as SecureChannelError {
            context.channel.triggerUserOutboundEvent(SecureChannelCloseRequest(error), promise: nil)
            return
        } catch {
            return refuse(context, "\(error)")
        }
        connecting = true
        deadline?.cancel()
        let secure = context.channel
        if hello.stripeCount > 0 { return joinStripe(context, hello, socketPath: socketPath) }
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let waterMark = Self.waterMark(for: peer.purpose)
        secure.setOption(ChannelOptions.writeBufferWaterMark, value: waterMark).whenComplete { _ in }
        // Shallow on a LAN, autotuned across a distance (StreamBufferSizing).
        StreamBuffers.size(secure, sending: false, congestionControl: .system).whenComplete { _ in }
        var bootstrap = ClientBootstrap(group: context.eventLoop).channelOption(.autoRead, value: false)
        // What QEMU has not read yet: for a disk's NBD stream, the requests' payloads (the memory
        // stream keeps NIO's default here).
        if peer.purpose == StreamPurpose.nbd.rawValue { bootstrap = bootstrap.channelOption(.writeBufferWaterMark, value: waterMark) }
        bootstrap
            .connect(unixDomainSocketPath: socketPath)
            .assumeIsolated()
            .whenComplete { result in
                let (acceptor, context) = loopBound.value
                switch result {
                case .success(let qemu):
                    let (toQEMU, toPeer) = GlueHandler.matchedPair()
                    do {
                        try secure.pipeline.syncOperations.addHandler(toQEMU)
                        try qemu.pipeline.syncOperations.addHandler(toPeer)
                    } catch {
                        acceptor.refuse(context, "cannot set up the stream: \(error)")
                        qemu.close(promise: nil)
                        return
                    }
                    let leftover = acceptor.buffer
                    acceptor.buffer = ByteBuffer()
                    context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                    if leftover.readableBytes > 0 { qemu.writeAndFlush(leftover, promise: nil) }
                    qemu.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                    secure.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                case .failure(let error):
                    acceptor.refuse(context, "destination QEMU is not accepting the migration at \(socketPath): \(error)")
                }
            }
    }

    /// A stripe of a striped stream (Protocol.md §6.14): its records go to the stream's join,
    /// which the first stripe to arrive makes and connects to QEMU.
    private func joinStripe(_ context: ChannelHandlerContext, _ hello: Hostmesh_V1_MigrationStreamHello, socketPath: String) {
        let count = Int(hello.stripeCount), index = Int(hello.stripeIndex)
        guard (2...StreamStriping.maxStripes).contains(count), index < count else {
            return refuse(context, "stripe \(index) of \(count): a striped stream has 2 to \(StreamStriping.maxStripes) stripes")
        }
        // The peer's authenticated name is part of the key: only its own stripes join its stream.
        let key = "\(peer.hostID)|\(peer.domain)|\(peer.purpose)|\(hello.migrationID)|\(hello.streamIndex)"
        guard let handle = StripedStreamJoin.join(key: key, stripeCount: count, socketPath: socketPath, on: context.eventLoop) else {
            return refuse(context, "stripe \(index) of \(count) for a stream already striped otherwise, or one that already ended")
        }
        let secure = context.channel
        secure.setOption(ChannelOptions.writeBufferWaterMark, value: Self.streamWaterMark).whenComplete { _ in }
        StreamBuffers.size(secure, sending: false, share: count, congestionControl: .system).whenComplete { _ in }
        let leftover = buffer
        buffer = ByteBuffer()
        handle.attach(index, secure) // before any record, so the join can pause this stripe
        do {
            try context.pipeline.syncOperations.addHandler(StripeReader(index: index, handle: handle, leftover: leftover))
        } catch {
            return refuse(context, "cannot set up the stripe: \(error)")
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func refuse(_ context: ChannelHandlerContext, _ message: String) {
        context.channel.triggerUserOutboundEvent(SecureChannelCloseRequest(SecureChannelError(.protocolViolation, message)), promise: nil)
    }
}
