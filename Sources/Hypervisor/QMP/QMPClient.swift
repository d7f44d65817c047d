import Foundation
public import Logging
public import NIOCore
public import NIOPosix

/// A QMP client on a unix socket: one connection to one QEMU.
///
/// `connect` reads the greeting and negotiates capabilities (`qmp_capabilities`); after that,
/// `execute` runs commands (each with an `id` and a timeout) and `events()` streams asynchronous
/// events. Every failure is a `QMPError`: a QEMU that exits, hangs, or answers nonsense never
/// leaves a caller waiting beyond its timeout. All socket work happens on a SwiftNIO event loop;
/// nothing here blocks a thread.
///
/// QEMU serves one client per QMP socket at a time: a second connection is accepted by the
/// kernel but gets no greeting until the first closes (`QMPError.greetingTimeout`).
public struct QMPClient: Sendable {
    /// Tunables for a connection.
    public struct Configuration: Sendable {
        /// Time allowed for connect + greeting + capabilities negotiation.
        public var connectTimeout: Duration = .seconds(5)
        /// Default time allowed for a command's answer.
        public var commandTimeout: Duration = .seconds(10)
        /// Longest accepted message; QMP answers are a few KiB, `human-monitor-command` output more.
        public var maxMessageBytes: Int = 16 << 20

        /// The defaults.
        public init() {}
    }

    /// The socket this client is connected to.
    public let path: String
    /// QEMU's greeting (its version).
    public let greeting: QMPGreeting
    /// The configuration used to connect; `commandTimeout` is the default for `execute`.
    public let configuration: Configuration
    private let channel: any Channel
    private let handler: NIOLoopBound<QMPConnectionHandler>
    private let logger: Logger

    private init(path: String, greeting: QMPGreeting, configuration: Configuration, channel: any Channel,
                 handler: NIOLoopBound<QMPConnectionHandler>, logger: Logger) {
        self.path = path
        self.greeting = greeting
        self.configuration = configuration
        self.channel = channel
        self.handler = handler
        self.logger = logger
    }

    /// Connects to the QMP socket at `path`, waits for the greeting and leaves negotiation mode.
    public static func connect(
        path: String,
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = QMPEventLoop.group,
        logger: Logger = Logger(label: "hostmesh.hypervisor.qmp")
    ) async throws(QMPError) -> QMPClient {
        // One loop for the channel and the promise that hands its handler out of the initializer
        // (looking the handler up afterwards races with a server that closes at once).
        let eventLoop = eventLoopGroup.next()
        let handlerPromise = eventLoop.makePromise(of: NIOLoopBound<QMPConnectionHandler>.self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = QMPConnectionHandler(path: path, logger: logger)
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(QMPLineDecoder(maxLength: configuration.maxMessageBytes)))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        handlerPromise.succeed(NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
                .connect(unixDomainSocketPath: path)
                .get()
        } catch {
            handlerPromise.fail(error)
            throw .connectFailed(path: path, reason: Self.describe(error))
        }
        do {
            let handler = try await handlerPromise.futureResult.get()
            let greetingPromise = eventLoop.makePromise(of: QMPGreeting.self)
            let deadline = eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
                greetingPromise.fail(QMPError.greetingTimeout(path: path, after: configuration.connectTimeout))
            }
            eventLoop.execute { handler.value.waitForGreeting(greetingPromise) }
            let greeting = try await greetingPromise.futureResult.get()
            deadline.cancel()
            let client = QMPClient(path: path, greeting: greeting, configuration: configuration, channel: channel,
                                   handler: handler, logger: logger)
            _ = try await client.execute("qmp_capabilities", timeout: configuration.connectTimeout)
            logger.debug("qmp connected", metadata: ["qmp.socket": "\(path)", "qemu.version": "\(greeting.version)"])
            return client
        } catch {
            channel.close(promise: nil)
            throw error as? QMPError ?? .connectFailed(path: path, reason: "\(error)")
        }
    }

    /// Runs `command` and returns its `return` member untouched.
    ///
    /// - Parameters:
    ///   - arguments: the `arguments` member, or nil for none.
    ///   - timeout: how long to wait for the answer; nil means `configuration.commandTimeout`.
    @discardableResult
    public func execute(_ command: String, arguments: JSONValue? = nil, timeout: Duration? = nil) async throws(QMPError) -> JSONValue {
        let promise = channel.eventLoop.makePromise(of: JSONValue.self)
        let handler = self.handler
        let timeout = timeout ?? configuration.commandTimeout
        channel.eventLoop.execute {
            handler.value.execute(command, arguments: arguments, timeout: timeout, promise: promise)
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw error as? QMPError ?? .disconnected(command: command, reason: "\(error)")
        }
    }

    /// Runs `command` with `arguments` encoded from a Codable value and decodes the result as `Result`.
    public func execute<Arguments: Encodable, Result: Decodable>(
        _ command: String, arguments: Arguments, returning: Result.Type, timeout: Duration? = nil
    ) async throws(QMPError) -> Result {
        let encoded: JSONValue
        do {
            encoded = try JSONValue.from(arguments)
        } catch {
            throw .unexpectedResult(command: command, expected: "encodable \(Arguments.self)", detail: "\(error)")
        }
        return try Self.decode(await execute(command, arguments: encoded, timeout: timeout), as: Result.self, command: command)
    }

    /// Runs `command` without arguments and decodes the result as `Result`.
    public func execute<Result: Decodable>(_ command: String, returning: Result.Type, timeout: Duration? = nil) async throws(QMPError) -> Result {
        try Self.decode(await execute(command, timeout: timeout), as: Result.self, command: command)
    }

    /// A new stream of every event received from now on. Each call is an independent
    /// subscriber; the stream finishes when the connection closes. Events are buffered
    /// (the newest 1,000 kept) if the consumer falls behind.
    public func events() -> AsyncStream<QMPEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: QMPEvent.self, bufferingPolicy: .bufferingNewest(1000))
        let handler = self.handler
        let eventLoop = channel.eventLoop
        eventLoop.execute {
            let token = handler.value.subscribe(continuation)
            continuation.onTermination = { _ in
                eventLoop.execute { handler.value.unsubscribe(token) }
            }
        }
        return stream
    }

    /// Closes the connection (QEMU keeps running). Pending commands fail with `disconnected`.
    public func close() async {
        let handler = self.handler
        channel.eventLoop.execute { handler.value.close(reason: "closed by this client") }
        try? await channel.closeFuture.get() // a close that failed has closed all the same
    }

    /// Completes when the connection has closed for any reason (QEMU exited, nonsense, `close()`).
    public func waitUntilClosed() async {
        try? await channel.closeFuture.get() // closed for any reason, as documented
    }

    private static func decode<Result: Decodable>(_ value: JSONValue, as type: Result.Type, command: String) throws(QMPError) -> Result {
        do {
            return try value.decode(type)
        } catch {
            throw .unexpectedResult(command: command, expected: "\(type)", detail: "\(describe(error)) in \(value.description.prefix(300))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return error.description }
        if let error = error as? DecodingError {
            switch error {
            case let .keyNotFound(key, context): return "missing \(key.stringValue) at \(context.codingPath.map(\.stringValue))"
            case let .typeMismatch(type, context): return "expected \(type) at \(context.codingPath.map(\.stringValue))"
            case let .valueNotFound(type, context): return "null \(type) at \(context.codingPath.map(\.stringValue))"
            case let .dataCorrupted(context): return context.debugDescription
            @unknown default: return "\(error)"
            }
        }
        return "\(error)"
    }
}
