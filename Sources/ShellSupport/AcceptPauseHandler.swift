public import Logging
public import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Stops a listening channel from spinning when `accept` fails for lack of resources (no file
/// descriptor left: EMFILE/ENFILE; no kernel memory: ENOBUFS/ENOMEM).
///
/// Why it is needed although NIO adds an `AcceptBackoffHandler` to every server channel: that
/// handler only delays the *next* read request, but the failed accept leaves NIO's read request
/// pending, so the listening socket stays registered for readability; epoll reports the waiting
/// connection again at once and NIO calls `accept` again, thousands of times a second, burning a
/// core (issue 19, finding 3). This handler turns reading off for `pause` (which takes the socket
/// out of epoll's read set), then turns it back on: one `accept` attempt per pause while the
/// descriptors are exhausted, and connections already open keep being served meanwhile. It logs
/// one line per pause interval at most (`LogLineLimiter`), with the count of failures in between.
///
/// Install it with `ServerBootstrap.serverChannelInitializer`, so it sees the accept errors
/// before NIO's own handlers. Not `Sendable`: it lives on its channel's event loop.
public final class AcceptPauseHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// Server channels read accepted child channels.
    public typealias InboundIn = any Channel
    /// Passed on unchanged.
    public typealias InboundOut = any Channel

    private let pause: TimeAmount
    private let logger: Logger
    private let listener: String
    private var limiter: LogLineLimiter<Int32>
    private var resume: Scheduled<Void>?

    /// - Parameters:
    ///   - pause: how long accepting stops after a failure for lack of resources (default 1 s).
    ///   - logInterval: at most one log line per errno per this interval (default 10 s).
    ///   - listener: names the listener in log lines (e.g. "secure channel", "control").
    public init(pause: TimeAmount = .seconds(1), logInterval: Duration = .seconds(10), listener: String, logger: Logger) {
        self.pause = pause
        self.logger = logger
        self.listener = listener
        self.limiter = LogLineLimiter(interval: logInterval)
    }

    /// The errnos after which accepting again at once is pointless.
    static let exhaustion: Set<Int32> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let io = error as? IOError, Self.exhaustion.contains(io.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        if let suppressed = limiter.record(io.errnoCode, now: ShellTimeline().now()) {
            logger.warning("cannot accept connections: out of descriptors or memory; pausing accepts, serving open connections",
                           metadata: ["listener": "\(listener)", "errno": "\(io.errnoCode)", "error": "\(io)",
                                      "accept.pause": "\(pause)", "log.suppressed": "\(suppressed)"])
        }
        guard resume == nil, let options = context.channel.syncOptions else { return }
        // Turning autoRead off removes the socket from epoll's read set at once (NIO's
        // pauseRead0), which is what stops the loop; turning it on again re-registers it.
        try? options.setOption(.autoRead, value: false) // only fails on a closed channel, which accepts nothing anyway
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        resume = context.eventLoop.scheduleTask(in: pause) {
            let (handler, context) = loopBound.value
            handler.resume = nil
            try? context.channel.syncOptions?.setOption(.autoRead, value: true) // closed meanwhile: nothing to resume
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        resume?.cancel()
        resume = nil
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}
