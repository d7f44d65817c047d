import Foundation
import Logging
import NIOCore

/// The QMP protocol on one connection: matches answers to commands by `id`, times commands
/// out, fans events out to subscribers, and fails everything pending with a typed error when
/// the connection breaks or QEMU sends nonsense.
///
/// Confined to its channel's event loop: every method is called on that loop (the client
/// reaches it through `NIOLoopBound`). Not `Sendable`, on purpose.
final class QMPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        let command: String
        let promise: EventLoopPromise<JSONValue>
        let timeout: Scheduled<Void>?
    }

    private let path: String
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var greeting: QMPGreeting?
    private var greetingWaiter: EventLoopPromise<QMPGreeting>?
    private var pending: [String: Pending] = [:]
    private var subscribers: [Int: AsyncStream<QMPEvent>.Continuation] = [:]
    private var nextSubscriber = 0
    private var nextID = 0
    /// Set once; every later request fails with it.
    private var closeError: QMPError?

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    // MARK: API used by QMPClient (on the event loop)

    /// Completes with the greeting, now or when it arrives.
    func waitForGreeting(_ promise: EventLoopPromise<QMPGreeting>) {
        if let greeting {
            promise.succeed(greeting)
        } else if let closeError {
            promise.fail(closeError)
        } else {
            greetingWaiter = promise
        }
    }

    /// Sends `{"execute": command, "arguments": arguments, "id": ...}` and completes `promise`
    /// with the `return` member.
    func execute(_ command: String, arguments: JSONValue?, timeout: Duration?, promise: EventLoopPromise<JSONValue>) {
        if let closeError {
            promise.fail(Self.error(closeError, for: command))
            return
        }
        guard let context else {
            promise.fail(QMPError.disconnected(command: command, reason: "the handler is not in a pipeline"))
            return
        }
        nextID += 1
        let id = "hm-\(nextID)"
        var message: [String: JSONValue] = ["execute": .string(command), "id": .string(id)]
        if let arguments { message["arguments"] = arguments }
        let bytes: Data
        do {
            bytes = try JSONValue.encoder.encode(JSONValue.object(message))
        } catch {
            promise.fail(QMPError.unexpectedResult(command: command, expected: "encodable arguments", detail: "\(error)"))
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: bytes.count + 1)
        buffer.writeBytes(bytes)
        buffer.writeInteger(UInt8(ascii: "\n"))

        let scheduled = timeout.map { timeout in
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(timeout)) {
                self.timedOut(id: id, after: timeout)
            }
        }
        pending[id] = Pending(command: command, promise: promise, timeout: scheduled)
        logger.trace("qmp send", metadata: ["qmp.command": "\(command)", "qmp.id": "\(id)"])
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenFailure { error in
            self.complete(id: id, with: .failure(QMPError.disconnected(command: command, reason: "write failed: \(error)")))
        }
    }

    /// Registers an event subscriber; returns its token for `unsubscribe`.
    func subscribe(_ continuation: AsyncStream<QMPEvent>.Continuation) -> Int {
        if closeError != nil {
            continuation.finish()
            return -1
        }
        nextSubscriber += 1
        subscribers[nextSubscriber] = continuation
        return nextSubscriber
    }

    /// Removes a subscriber (its stream was cancelled or dropped).
    func unsubscribe(_ token: Int) {
        subscribers[token] = nil
    }

    /// Closes the connection on purpose; pending commands fail with `disconnected`.
    func close(reason: String) {
        shutDown(QMPError.disconnected(command: nil, reason: reason))
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        shutDown(QMPError.disconnected(command: nil, reason: "the QMP handler was removed"))
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = Data(unwrapInboundIn(data).readableBytesView)
        let message: QMPInbound
        do {
            message = try QMPInbound.parse(line: line)
        } catch let error as QMPError {
            logger.debug("qmp nonsense, closing", metadata: ["qmp.socket": "\(path)", "error": "\(error)"])
            shutDown(error)
            return
        } catch {
            shutDown(QMPError.malformedMessage(excerpt: "\(error)"))
            return
        }
        if greeting == nil {
            guard case let .greeting(greeting) = message else {
                shutDown(QMPError.notQMP(path: path, firstMessage: QMPInbound.excerpt(line)))
                return
            }
            self.greeting = greeting
            greetingWaiter?.succeed(greeting)
            greetingWaiter = nil
            return
        }
        switch message {
        case .greeting:
            logger.debug("second QMP greeting ignored", metadata: ["qmp.socket": "\(path)"])
        case let .success(id, result):
            route(id: id, line: line, result: .success(result))
        case let .failure(id, errorClass, description):
            route(id: id, line: line, result: .failure(QMPError.commandFailed(command: "", errorClass: errorClass, description: description)))
        case let .event(event):
            logger.trace("qmp event", metadata: ["qmp.event": "\(event.name)"])
            for subscriber in subscribers.values { subscriber.yield(event) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        shutDown(QMPError.disconnected(command: nil, reason: "QEMU closed the socket"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? QMPError {
            shutDown(error)
        } else if let error = error as? IOError, [ECONNRESET, EPIPE].contains(error.errnoCode) {
            // QEMU exiting with unread input resets the connection instead of closing it.
            shutDown(QMPError.disconnected(command: nil, reason: "QEMU closed the socket (connection reset)"))
        } else {
            shutDown(QMPError.disconnected(command: nil, reason: "\(error)"))
        }
    }

    // MARK: internals

    private func route(id: JSONValue?, line: Data, result: Result<JSONValue, QMPError>) {
        guard let id = id?.stringValue, pending[id] != nil else {
            // Answers to timed-out commands, or errors QEMU could not attach to a command.
            logger.debug("qmp answer matches no pending command", metadata: ["qmp.line": "\(QMPInbound.excerpt(line))"])
            return
        }
        complete(id: id, with: result.mapError { $0 })
    }

    private func complete(id: String, with result: Result<JSONValue, any Error>) {
        guard let entry = pending.removeValue(forKey: id) else { return }
        entry.timeout?.cancel()
        switch result {
        case let .success(value):
            entry.promise.succeed(value)
        case let .failure(error):
            entry.promise.fail(Self.error(error as? QMPError ?? .disconnected(command: nil, reason: "\(error)"), for: entry.command))
        }
    }

    private func timedOut(id: String, after: Duration) {
        guard let command = pending[id]?.command else { return }
        logger.debug("qmp command timed out", metadata: ["qmp.command": "\(command)", "qmp.id": "\(id)"])
        complete(id: id, with: .failure(QMPError.timeout(command: command, after: after)))
    }

    /// Records why the connection is unusable, fails everything waiting, and closes it.
    private func shutDown(_ error: QMPError) {
        guard closeError == nil else { return }
        closeError = error
        greetingWaiter?.fail(error)
        greetingWaiter = nil
        for id in Array(pending.keys) { complete(id: id, with: .failure(error)) }
        for subscriber in subscribers.values { subscriber.finish() }
        subscribers = [:]
        context?.close(promise: nil)
    }

    /// Names the command in errors that are about a command.
    private static func error(_ error: QMPError, for command: String) -> QMPError {
        switch error {
        case let .disconnected(_, reason): return .disconnected(command: command, reason: reason)
        case let .commandFailed(_, errorClass, description):
            return .commandFailed(command: command, errorClass: errorClass, description: description)
        default: return error
        }
    }
}
