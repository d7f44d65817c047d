public import Logging
import MeshCrypto
import MeshIdentity
import MeshWire
public import NIOCore
import ShellSupport

/// The SwiftNIO shell of a secure channel: turns socket bytes into frames, feeds them to the
/// handshake and record cores, and carries out what they return. Inbound it emits decrypted
/// application `ByteBuffer`s; outbound it takes application `ByteBuffer`s and seals them.
/// Writes made before the handshake completes are queued and sent once it does.
///
/// Failures are fired as `SecureChannelError` through `errorCaught` (so `NIOAsyncChannel` readers
/// see them thrown), `handshakeCompleted` fails with them, and the channel closes after telling
/// the peer why (an authenticated Close record once keys exist, a cleartext Reject before).
public final class SecureChannelHandler {
    /// Which side of the handshake this is.
    public enum Role: Sendable {
        /// Opened the connection.
        case initiator
        /// Accepted the connection; `rateLimiter` bounds handshakes per source.
        case responder(rateLimiter: SharedHandshakeRateLimiter?)
    }

    private enum State {
        case initiating(HandshakeInitiator)
        case responding(HandshakeResponder)
        case established(RecordSealer, RecordOpener)
        case closed
    }

    private let configuration: SecureChannelConfiguration
    private let role: Role
    private let logger: Logger
    private var state: State
    private var decoder: FrameDecoder
    /// The start of a frame that straddles reads; only these bytes are ever copied.
    private var partialFrame: ByteBuffer?
    /// Plaintext of the data records of the current read, decrypted back to back and handed on
    /// as slices once the read is processed. Reused across reads when the application has
    /// released the previous slices (ByteBuffer reuses uniquely referenced storage).
    private var plaintextArena = ByteBuffer()
    private var pendingDeliveries: [(index: Int, length: Int)] = []
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var handshakePromise: EventLoopPromise<ChannelSession>?
    /// Initiator only: completed once message 3 is written and records may follow it.
    private var keysPromise: EventLoopPromise<ChannelSession>?
    private var timeout: Scheduled<Void>?
    /// The end of a lingering close (`fail`): the socket closes then if the peer has not.
    private var linger: Scheduled<Void>?
    /// How long a channel that told its peer why it ends (Reject or Close) keeps reading, and
    /// discarding, what the peer still sends, so that its reason is not reset away unread.
    static let lingerTimeout: TimeAmount = .milliseconds(500)
    private var closeSeen = false
    private var failure: SecureChannelError?
    private var unflushed = false
    /// Initiator only: keys exist but the responder has not yet accepted our certificate.
    private var awaitingAccept: ChannelSession?
    /// The peer said it discards padding records (set once this side holds the traffic keys).
    private var peerAcceptsPadding = false
    /// Sealed-output buffers whose writes completed, kept for reuse: allocating fresh multi-MiB
    /// buffers for every write costs a page fault and a page clear per 4 KiB, which at GB/s
    /// rates is as expensive as the encryption itself.
    private var spareOutputBuffers: [ByteBuffer] = []
    private static let maxSpareOutputBuffers = 4
    /// While established: the peer's entry in the revocation registry, so a list that revokes
    /// it later closes this channel (Protocol.md §2.5).
    private var revocationWatch: RevocationRegistry.Token?
    /// Set for a channel to a host of a federated domain: its grant is watched (Protocol.md §2.9).
    private var federationWatch: FederationRegistry.Token?
    /// The credentials as given (not the handshake's snapshot): their rotations are announced
    /// on this channel once it is established (Protocol.md §3.9).
    private let liveCredentials: ChannelCredentials
    /// While established: who is authenticated by which key now, and the re-authentication
    /// sequence numbers of both sides.
    private var reauthentication: ChannelReauthentication?
    private var rotationWatch: RotationWatchToken?
    /// While established: the key the peer is authenticated by, watched for its retirement.
    private var retiredKeyWatch: RetiredKeyRegistry.Token?
    private var retiredKeyDeadline: Scheduled<Void>?

    /// Completes with the session once the peer is authenticated; fails with a `SecureChannelError`.
    public var handshakeCompleted: EventLoopFuture<ChannelSession> { handshakePromise!.futureResult }

    /// Initiator only: completes with the session once this side has verified the responder
    /// (message 2) and written message 3, when data records may already follow (Protocol.md §3.6),
    /// half a round trip before the responder's accept; fails as `handshakeCompleted` does if
    /// the handshake fails first. A responder's never completes before `handshakeCompleted`.
    public let keysReady: EventLoopFuture<ChannelSession>

    /// The reason the channel failed, if it did.
    public var failureReason: SecureChannelError? { failure }

    /// A handler for one connection. Add it to a channel's pipeline before it becomes active.
    public init(role: Role, configuration: SecureChannelConfiguration, eventLoop: any EventLoop, logger: Logger) throws(SecureChannelError) {
        self.role = role
        // One identity and certificate for the whole handshake, even if the host rotates meanwhile.
        var configuration = configuration
        self.liveCredentials = configuration.credentials
        configuration.credentials = configuration.credentials.snapshot()
        self.configuration = configuration
        self.logger = logger
        // Records are refused until this side holds traffic keys (`establish`): before that only
        // the handshake's own small frames are buffered (Protocol.md §3.2).
        self.decoder = FrameDecoder(maxRecordPayload: configuration.policy.maxRecordPayload, acceptsRecords: false)
        switch role {
        case .initiator:
            state = .initiating(try HandshakeInitiator(credentials: configuration.credentials, policy: configuration.policy, ephemeral: configuration.makeEphemeral()))
        case .responder:
            // No key pair yet: it is made once message 1 has passed mac1 and the rate limit.
            state = .responding(HandshakeResponder(credentials: configuration.credentials, policy: configuration.policy))
        }
        let handshake = eventLoop.makePromise(of: ChannelSession.self)
        handshakePromise = handshake
        if case .initiator = role {
            let keys = eventLoop.makePromise(of: ChannelSession.self)
            keysPromise = keys
            keysReady = keys.futureResult
        } else {
            keysReady = handshake.futureResult
        }
    }
}

@available(*, unavailable)
extension SecureChannelHandler: Sendable {}

extension SecureChannelHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        // A channel can be torn down without ever becoming active (a connect that failed, a
        // listener closing): the handshake's waiters must still hear about it.
        timeout?.cancel()
        unwatchAll()
        failPending(failure ?? SecureChannelError(.truncated, "the channel closed before the handshake completed"))
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard timeout == nil else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: configuration.handshakeTimeout) {
            let (handler, context) = loopBound.value
            if case .established = handler.state, handler.awaitingAccept == nil { return }
            handler.fail(context: context, SecureChannelError(.handshakeTimeout, "no complete handshake within \(handler.configuration.handshakeTimeout)"))
        }
        if case .initiating(var initiator) = state {
            let frame = initiator.start()
            state = .initiating(initiator)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: frame)), promise: nil)
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Closed (lingering, or racing the close): what still comes is discarded unread.
        guard isOpen else { return }
        var input = unwrapInboundIn(data)
        plaintextArena.clear(minimumCapacity: input.readableBytes + (partialFrame?.readableBytes ?? 0))
        do throws(SecureChannelError) {
            // 1. Finish the frame that straddled the previous read, copying only its bytes.
            if var partial = partialFrame {
                partialFrame = nil
                while isOpen, input.readableBytes > 0 {
                    let header = min(input.readableBytes, max(0, 5 - partial.readableBytes))
                    if header > 0 { var h = input.readSlice(length: header)!; partial.writeBuffer(&h); continue }
                    // The header is complete: check it before reserving anything for the body.
                    let missing = try decoder.frameSize(at: partial)! - partial.readableBytes
                    if missing > 0 {
                        var more = input.readSlice(length: min(missing, input.readableBytes))!
                        partial.reserveCapacity(minimumWritableBytes: missing)
                        partial.writeBuffer(&more)
                    }
                    break
                }
                if let frame = try decoder.next(from: &partial) {
                    try process(frame, context: context)
                } else {
                    partialFrame = partial
                    deliver(context: context)
                    return
                }
            }
            // 2. Whole frames straight out of this read.
            while isOpen, let frame = try decoder.next(from: &input) {
                try process(frame, context: context)
            }
            // 3. Keep an incomplete tail, sized for its frame only once its header is in and
            //    checked: a length field alone (fewer than 5 bytes) reserves nothing.
            if isOpen, input.readableBytes > 0 {
                var tail = context.channel.allocator.buffer(capacity: max(input.readableBytes, try decoder.frameSize(at: input) ?? 0))
                tail.writeBuffer(&input)
                partialFrame = tail
            }
            deliver(context: context)
        } catch {
            fail(context: context, error)
        }
    }

    /// Hands the plaintext decrypted so far to the next handler, in order.
    private func deliver(context: ChannelHandlerContext) {
        guard !pendingDeliveries.isEmpty else { return }
        let deliveries = pendingDeliveries
        pendingDeliveries.removeAll(keepingCapacity: true)
        for d in deliveries {
            context.fireChannelRead(wrapInboundOut(plaintextArena.getSlice(at: d.index, length: d.length)!))
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        context.fireChannelReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        linger?.cancel()
        if case .closed = state {} else if !closeSeen {
            let established: Bool = { if case .established = state { return true } else { return false } }()
            let error = established
                ? SecureChannelError(.truncated, "connection ended without an authenticated close: cut or truncated in transit")
                : SecureChannelError(.truncated, "connection closed during the handshake (the peer refused or went away)")
            record(error)
            context.fireErrorCaught(error)
        }
        state = .closed
        unwatchAll()
        failPending(failure ?? SecureChannelError(.normal, "channel closed"))
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let channelError = error as? SecureChannelError {
            context.fireErrorCaught(channelError)
        } else {
            // Socket errors (reset, refused) end the channel like a truncation.
            fail(context: context, SecureChannelError(.truncated, "socket error: \(error)"), tellPeer: false)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        switch state {
        case .established(var sealer, let opener):
            let records = bytes.readableBytes / max(1, sealer.maxPayload) + 2
            var out = outputBuffer(context: context, capacity: bytes.readableBytes + records * FrameDecoder.recordOverhead + 64)
            do {
                try sealer.sealData(bytes, now: ShellTimeline().now(), into: &out)
                state = .established(sealer, opener)
                let written = context.eventLoop.makePromise(of: Void.self)
                written.futureResult.assumeIsolated().whenComplete { result in
                    // NIO has dropped its reference by now, so the storage can be reused in place.
                    if self.spareOutputBuffers.count < Self.maxSpareOutputBuffers { self.spareOutputBuffers.append(out) }
                    promise?.completeWith(result)
                }
                context.write(wrapOutboundOut(out), promise: written)
            } catch {
                promise?.fail(error)
                fail(context: context, error)
            }
        case .initiating, .responding:
            pendingWrites.append((bytes, promise))
        case .closed:
            promise?.fail(failure ?? SecureChannelError(.normal, "channel is closed"))
        }
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let request = event as? SecureChannelCloseRequest {
            fail(context: context, request.reason)
            promise?.succeed()
        } else if let rotation = event as? KeyRotationNotice {
            announce(rotation, context: context)
            promise?.succeed()
        } else if let retirement = event as? RetiredKeyRegistry.Retirement {
            scheduleRetirement(retirement, context: context)
            promise?.succeed()
        } else if let padding = event as? SecureChannelPadding {
            guard case .established(var sealer, let opener) = state, peerAcceptsPadding else {
                promise?.fail(failure ?? SecureChannelError(.internalError, "no padding on this channel: it is not established, or its peer does not accept padding records"))
                return
            }
            let length = max(0, min(padding.length, sealer.maxPayload))
            var out = context.channel.allocator.buffer(capacity: length + 2 * FrameDecoder.recordOverhead + 64)
            do { try sealer.sealPadding(length: length, now: ShellTimeline().now(), into: &out) } catch { promise?.fail(error); return }
            state = .established(sealer, opener)
            context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        } else if let raw = event as? UncheckedReauthenticationRecord, case .established(var sealer, let opener) = state {
            var out = context.channel.allocator.buffer(capacity: raw.content.count + 64)
            do { try sealer.sealReauthentication(raw.content, into: &out) } catch { promise?.fail(error); return }
            state = .established(sealer, opener)
            context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if linger != nil, mode == .all, context.channel.isActive {
            // Lingering after a failure (`fail`): closed when that ends, at the latest at its bound.
            context.channel.closeFuture.cascade(to: promise)
            return
        }
        guard mode == .all, case .established(var sealer, _) = state else {
            context.close(mode: mode, promise: promise)
            return
        }
        // An orderly close: the Close record goes after every record already written, and the
        // socket closes only once it (and so everything before it) has been handed to the kernel;
        // closing at once would discard pending writes: the end of the stream.
        var out = context.channel.allocator.buffer(capacity: 64)
        closeSeen = true
        state = .closed
        // Sealing fails only with the send counter exhausted; the socket then closes without a
        // Close record, which the peer treats as a truncation (fails closed), never as success.
        guard (try? sealer.sealClose(.normal, "closed by \(configuration.credentials.identity.hostID)", into: &out)) != nil else {
            context.close(mode: mode, promise: promise)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let timeout = context.eventLoop.scheduleTask(in: .seconds(10)) { loopBound.value.close(promise: nil) }
        context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in
            timeout.cancel()
            loopBound.value.close(mode: mode, promise: promise)
        }
    }

    // MARK: - Frames

    private func process(_ frame: Frame, context: ChannelHandlerContext) throws(SecureChannelError) {
        switch state {
        case .initiating(var initiator):
            let (finish, session) = try initiator.receive(frame, now: configuration.unixTime())
            state = .initiating(initiator)
            context.write(wrapOutboundOut(ByteBuffer(bytes: finish)), promise: nil)
            unflushed = true
            // Queued writes may go now; the handshake completes when the responder accepts.
            awaitingAccept = session
            establish(session, context: context)
        case .responding(var responder):
            if frame.type == .filler {
                try responder.discardFiller(frame)
                state = .responding(responder)
            } else if frame.type == .handshakeInit {
                let validated = try responder.validateInit(frame)
                if case .responder(let limiter?) = role {
                    let source = context.channel.remoteAddress?.ipAddress ?? "unknown"
                    guard limiter.allow(source: source) else {
                        throw SecureChannelError(.rateLimited, "too many handshakes from \(source); retry in a few seconds")
                    }
                }
                let response = try responder.respond(to: validated, ephemeral: configuration.makeEphemeral())
                state = .responding(responder)
                decoder.acceptsFiller = configuration.policy.acceptsFiller
                context.write(wrapOutboundOut(ByteBuffer(bytes: response)), promise: nil)
                unflushed = true
            } else {
                switch try responder.receiveFinish(frame, now: configuration.unixTime()) {
                case .established(let session):
                    establish(session, context: context, accept: true)
                case .refused(let session, let error):
                    var sealer = RecordSealer(session: session, rekeyAfterBytes: .max, rekeyAfter: .seconds(Int64.max), now: .origin)
                    var out = context.channel.allocator.buffer(capacity: 256)
                    try? sealer.sealClose(error.code, error.detail, into: &out) // counter 0 of a fresh sealer: cannot fail; the refusal stands either way
                    context.writeAndFlush(wrapOutboundOut(out), promise: nil)
                    fail(context: context, error, tellPeer: false, told: true)
                }
            }
        case .established(let sealer, var opener):
            let start = plaintextArena.writerIndex
            let opened = try opener.open(frame, appendingTo: &plaintextArena)
            state = .established(sealer, opener)
            switch opened {
            case .data, .padding: break
            default: deliver(context: context) // keep data ahead of control events
            }
            switch opened {
            case .accepted:
                guard let session = awaitingAccept else {
                    throw SecureChannelError(.protocolViolation, "unexpected accept record")
                }
                awaitingAccept = nil
                timeout?.cancel()
                completeHandshake(session, context: context)
            case .data where awaitingAccept != nil, .padding where awaitingAccept != nil:
                throw SecureChannelError(.protocolViolation, "data before the responder's accept record")
            case .padding where !configuration.policy.acceptsPadding:
                throw SecureChannelError(.protocolViolation, "a padding record, which this side did not say it accepts")
            case .padding:
                break
            case .data:
                let length = plaintextArena.writerIndex - start
                if length > 0 { pendingDeliveries.append((start, length)) }
            case .keyUpdated:
                logger.trace("peer switched record keys", metadata: ["mesh.key_updates": "\(opener.keyUpdates)"])
            case .reauthentication(let content):
                try acceptReauthentication(content, context: context)
            case .closed(let reason):
                closeSeen = true
                if reason.code == .normal {
                    state = .closed
                    context.close(promise: nil)
                } else {
                    fail(context: context, reason, tellPeer: false)
                }
            }
        case .closed:
            break
        }
    }

    private func establish(_ session: ChannelSession, context: ChannelHandlerContext, accept: Bool = false) {
        var sealer = RecordSealer(session: session, rekeyAfterBytes: configuration.rekeyAfterBytes,
                                  rekeyAfter: Duration(configuration.rekeyAfter), now: ShellTimeline().now())
        if accept {
            var out = context.channel.allocator.buffer(capacity: 64)
            try? sealer.sealAccept(into: &out) // counter 0 of a fresh sealer: cannot be exhausted
            context.write(wrapOutboundOut(out), promise: nil)
            unflushed = true
        }
        state = .established(sealer, RecordOpener(session: session))
        peerAcceptsPadding = session.peerAcceptsPadding
        decoder.acceptsRecords = true
        decoder.acceptsFiller = false
        logger.debug("channel established", metadata: ["mesh.peer": "\(session.peer)", "mesh.aead": "\(session.aead.rawValue)"])
        let queued = pendingWrites
        pendingWrites = []
        for (bytes, promise) in queued { write(context: context, data: wrapOutboundOut(bytes), promise: promise) }
        if !queued.isEmpty { unflushed = true }
        flushIfNeeded(context: context)
        if let keys = keysPromise {
            keysPromise = nil
            keys.succeed(session)
        }
        if awaitingAccept == nil {
            timeout?.cancel()
            completeHandshake(session, context: context)
        }
    }

    /// The peer is authenticated: hand the session out and watch the peer's certificate, so a
    /// revocation installed later closes this channel with code 21 and the entry's reason.
    private func completeHandshake(_ session: ChannelSession, context: ChannelHandlerContext) {
        let channel = context.channel
        let peer = session.peer
        @Sendable func reason(_ entry: Hostmesh_V1_RevocationEntry) -> SecureChannelError {
            SecureChannelError(.revoked, "\(peer.hostID) (certificate serial \(peer.certificate.serial)) is revoked by domain \(peer.domain): \(entry.summary)")
        }
        let registry = configuration.credentials.trust.revocations
        revocationWatch = registry.watch(peer.certificate) { entry in
            channel.triggerUserOutboundEvent(SecureChannelCloseRequest(reason(entry)), promise: nil)
        }
        if revocationWatch == nil, let entry = registry.entry(revoking: peer.certificate) {
            // Revoked between the certificate check and now: refuse as the check would have.
            fail(context: context, reason(entry))
            return
        }
        // A peer vouched for by a federation grant rather than a trust anchor: its channel closes
        // (code 24) once no grant in force lets its domain in (revoked, replaced, expired).
        let trust = configuration.credentials.trust
        if let domainKey = try? peer.certificate.domainKey(), trust.anchors[domainKey] == nil { // a key that does not decode cannot have verified
            let federation = trust.federation
            federationWatch = federation.watch(peerKey: domainKey, now: configuration.unixTime()) { why in
                channel.triggerUserOutboundEvent(SecureChannelCloseRequest(
                    SecureChannelError(.notFederated, "\(peer.hostID) of domain \(peer.domain): \(why)")), promise: nil)
            }
            if federationWatch == nil {
                // The grant went out of force between the certificate check and now.
                fail(context: context, SecureChannelError(.notFederated, "\(peer.hostID) of domain \(peer.domain): no grant in force lets its domain in"))
                return
            }
        }
        if handshakePromise != nil { ChannelMetrics.completed(role) }
        reauthentication = ChannelReauthentication(session: session, localKey: configuration.credentials.identity.signingKey.publicKey)
        watchRetirement(of: peer.certificate, context: context)
        rotationWatch = liveCredentials.watchRotations { notice in
            channel.triggerUserOutboundEvent(notice, promise: nil)
        }
        handshakePromise?.succeed(session)
        handshakePromise = nil
        // The host rotated while this channel was being set up: announce it now.
        if let last = liveCredentials.lastRotation { announce(last, context: context) }
    }

    // MARK: - Re-authentication (Protocol.md §3.9)

    /// This host rotated its key: tell the peer on this channel, in a record sealed after every
    /// one already written. A rotation that does not start from the key this channel holds (one
    /// announced already, or one the channel missed) is skipped.
    private func announce(_ rotation: KeyRotationNotice, context: ChannelHandlerContext) {
        guard case .established(var sealer, let opener) = state, awaitingAccept == nil, var reauth = reauthentication,
              let content = reauth.announce(rotation) else { return }
        var out = context.channel.allocator.buffer(capacity: content.count + 64)
        do {
            try sealer.sealReauthentication(content, into: &out)
        } catch {
            fail(context: context, error)
            return
        }
        state = .established(sealer, opener)
        reauthentication = reauth
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        logger.notice("channel re-authenticated in place with the new key", metadata: [
            "mesh.peer": "\(reauth.peerCertificate.hostID)", "mesh.purpose": "\(reauth.purpose)",
            "mesh.new_key": "\(rotation.identity.signingKey.publicKey.fingerprint)", "mesh.reauth_sequence": "\(reauth.localSequence)"])
        ChannelMetrics.reauthenticated(direction: "sent")
        configuration.observer?(.announced(sequence: reauth.localSequence, newKey: rotation.identity.signingKey.publicKey))
    }

    /// The peer rotated its key: check what it says (a refusal closes the channel, code 30, 21
    /// or 31), then move the channel's peer to its new certificate: watched for revocation and
    /// retirement from now on, and its old key retired (refused after the grace period).
    private func acceptReauthentication(_ content: [UInt8], context: ChannelHandlerContext) throws(SecureChannelError) {
        guard awaitingAccept == nil, var reauth = reauthentication else {
            throw SecureChannelError(.protocolViolation, "a re-authentication record before the handshake completed")
        }
        let now = configuration.unixTime()
        let trust = configuration.credentials.trust
        let accepted: ChannelReauthentication.Accepted
        do { accepted = try reauth.accept(content, trust: trust, now: now) } catch {
            ChannelMetrics.reauthenticated(direction: "refused")
            throw error
        }
        reauthentication = reauth
        unwatchRevocation()
        let channel = context.channel
        let peer = accepted.current
        revocationWatch = trust.revocations.watch(peer) { entry in
            channel.triggerUserOutboundEvent(SecureChannelCloseRequest(SecureChannelError(
                .revoked, "\(peer.hostID) (certificate serial \(peer.serial)) is revoked by domain \(peer.domain): \(entry.summary)")), promise: nil)
        }
        if let oldKey = try? accepted.previous.identityKey() { // the handshake verified it: 32 bytes
            trust.retiredKeys.retire(hostID: peer.hostID, key: oldKey, now: now)
        }
        watchRetirement(of: peer, context: context)
        let newKey = try? peer.identityKey() // verified by the check above: always a key
        logger.notice("peer re-authenticated in place with its new key", metadata: [
            "mesh.peer": "\(peer.hostID)", "mesh.purpose": "\(reauth.purpose)", "mesh.cert_serial": "\(peer.serial)",
            "mesh.new_key": "\(newKey?.fingerprint ?? "?")", "mesh.reauth_sequence": "\(accepted.sequence)"])
        ChannelMetrics.reauthenticated(direction: "accepted")
        configuration.observer?(.accepted(accepted))
    }

    /// Watches the key `certificate` certifies: once its host rotates away from it, this channel
    /// closes at the end of the grace period unless the peer re-authenticated by then.
    private func watchRetirement(of certificate: HostCertificate, context: ChannelHandlerContext) {
        if let token = retiredKeyWatch { configuration.credentials.trust.retiredKeys.unwatch(token) }
        retiredKeyWatch = nil
        retiredKeyDeadline?.cancel()
        retiredKeyDeadline = nil
        guard let key = try? certificate.identityKey() else { return } // verified at the handshake or re-authentication: always a key
        let registry = configuration.credentials.trust.retiredKeys
        let channel = context.channel
        retiredKeyWatch = registry.watch(hostID: certificate.hostID, key: key) { retirement in
            channel.triggerUserOutboundEvent(retirement, promise: nil)
        }
        if retiredKeyWatch == nil, let retirement = registry.retirement(hostID: certificate.hostID, key: key) {
            scheduleRetirement(retirement, context: context)
        }
    }

    private func scheduleRetirement(_ retirement: RetiredKeyRegistry.Retirement, context: ChannelHandlerContext) {
        let delay = max(0, retirement.refusedFrom - configuration.unixTime())
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        retiredKeyDeadline?.cancel()
        retiredKeyDeadline = context.eventLoop.scheduleTask(in: .seconds(delay)) {
            let (handler, context) = loopBound.value
            guard let current = handler.reauthentication?.peerCertificate, (try? current.identityKey()) == retirement.key else { return } // re-authenticated meanwhile
            handler.fail(context: context, SecureChannelError(.keyRetired,
                "\(retirement.hostID) still uses key \(retirement.key.fingerprint) on this channel, which it rotated away from; its grace period ended at \(retirement.refusedFrom)"))
        }
    }

    private func unwatchAll() {
        unwatchRevocation()
        if let token = rotationWatch { liveCredentials.unwatchRotations(token) }
        rotationWatch = nil
        if let token = retiredKeyWatch { configuration.credentials.trust.retiredKeys.unwatch(token) }
        retiredKeyWatch = nil
        retiredKeyDeadline?.cancel()
        retiredKeyDeadline = nil
    }

    private func unwatchRevocation() {
        if let token = revocationWatch {
            configuration.credentials.trust.revocations.unwatch(token)
            revocationWatch = nil
        }
        if let token = federationWatch {
            configuration.credentials.trust.federation.unwatch(token)
            federationWatch = nil
        }
    }

    private func outputBuffer(context: ChannelHandlerContext, capacity: Int) -> ByteBuffer {
        guard var buffer = spareOutputBuffers.popLast() else { return context.channel.allocator.buffer(capacity: capacity) }
        buffer.clear(minimumCapacity: capacity)
        return buffer
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        if unflushed {
            unflushed = false
            context.flush()
        }
    }

    // MARK: - Failure

    private func record(_ error: SecureChannelError) {
        if failure == nil { failure = error }
    }

    /// Ends the channel with `error`: tells the peer why where it can (`tellPeer`, or it was
    /// `told` already) and then closes lingering (`lingeringClose`), else outright.
    private func fail(context: ChannelHandlerContext, _ error: SecureChannelError, tellPeer: Bool = true, told alreadyTold: Bool = false) {
        if case .closed = state { return }
        deliver(context: context) // records authenticated before the failure still count
        record(error)
        timeout?.cancel()
        var told = alreadyTold
        if tellPeer, !error.byPeer {
            switch state {
            case .established(var sealer, _):
                var out = context.channel.allocator.buffer(capacity: 256)
                // Only the advisory reason is lost if sealing fails (counter exhausted): the channel closes regardless.
                if (try? sealer.sealClose(error.code, error.detail, into: &out)) != nil {
                    context.writeAndFlush(wrapOutboundOut(out), promise: nil)
                    told = true
                }
            case .responding, .initiating:
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: HandshakeWire.rejectFrame(error))), promise: nil)
                told = true
            case .closed:
                break
            }
        }
        if [.reauthenticationRefused, .keyRetired].contains(error.code) {
            logger.warning("channel closed: \(error)", metadata: ["mesh.peer": "\(reauthentication?.peerCertificate.hostID ?? "?")"])
        }
        closeSeen = true
        state = .closed
        unwatchAll()
        partialFrame = nil
        pendingDeliveries.removeAll()
        failPending(error)
        // The linger starts before the pipeline hears of the error: a handler that closes the
        // channel on it (most do) then waits for the linger's end instead of cutting it short.
        if told, context.channel.isActive {
            lingeringClose(context: context)
            context.fireErrorCaught(error)
        } else {
            context.fireErrorCaught(error)
            context.close(promise: nil)
        }
    }

    /// Ends the connection after a Reject or Close: FIN after it, then what the peer still sends
    /// is read and discarded until the peer closes or `lingerTimeout` passes. A full close with
    /// bytes unread sends a reset instead, and the peer may then see only that: its writes fail
    /// with "connection reset", or its socket reports the error, before it reads why (a refused
    /// filler did so 7 times in 8; a key refused while the stream's first bytes were on their way).
    private func lingeringClose(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let linger = context.eventLoop.scheduleTask(in: Self.lingerTimeout) { loopBound.value.close(promise: nil) }
        self.linger = linger
        // Reading on (a stream's reads may be paused): the peer's close is what ends the linger early.
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true) // a channel without the option reads once, below
        context.read()
        context.close(mode: .output).assumeIsolated().whenFailure { _ in
            // The half-close refused (the channel already closing): close outright, as before.
            linger.cancel()
            loopBound.value.close(promise: nil)
        }
    }

    private func failPending(_ error: SecureChannelError) {
        if handshakePromise != nil { ChannelMetrics.failed(role, error) }
        handshakePromise?.fail(error)
        handshakePromise = nil
        keysPromise?.fail(error)
        keysPromise = nil
        let queued = pendingWrites
        pendingWrites = []
        for (_, promise) in queued { promise?.fail(error) }
    }
}

extension SecureChannelHandler {
    private var isOpen: Bool { if case .closed = state { return false } else { return true } }
}

/// Seals `content` as a re-authentication record as it is, with no check: for tests of the
/// peer's refusals only (reachable through `@testable import`, never sent by the agent).
struct UncheckedReauthenticationRecord: Sendable {
    let content: [UInt8]
}
