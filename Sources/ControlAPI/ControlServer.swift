import Foundation
public import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOPosix
import ShellSupport

/// Answers one request on a control connection: send progress with `progress(_:)`, then return
/// the result or throw a `ControlError` (any other error becomes code "failed").
public struct ControlResponder: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    /// Completes when the connection closes (the client went away, or the server closed it).
    let closed: EventLoopFuture<Void>

    /// Sends one progress line.
    public func progress(_ value: some Encodable & Sendable) async throws {
        try await outbound.write(ByteBuffer(bytes: try controlEncoder.encode(Wrapped(kind: .progress, value: value)) + [0x0a]))
    }

    /// Returns once the connection has closed (a client that hung up closes it: nothing more is
    /// read from it after the request line), or when the calling task is cancelled. A request
    /// that streams until the client leaves (`events`) waits on this instead of on its next write.
    public func clientLeft() async {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        closed.whenComplete { _ in continuation.finish() }
        for await _ in stream {}
    }
}

/// The parsed request: its method, and typed access to its parameters.
public struct ControlRequest: Sendable {
    /// The method name, e.g. "vm.create".
    public let method: String
    let line: Data

    /// Decodes the parameters as `P`; a `bad_request` error names the parameter that is
    /// missing, of the wrong type or malformed.
    public func params<P: Decodable>(_ type: P.Type = P.self) throws(ControlError) -> P {
        try params(as: P.self)
    }

    /// Decodes the parameters as `P` and checks their ranges (`ControlParameters.validate()`).
    public func params<P: ControlParameters>(_ type: P.Type = P.self) throws(ControlError) -> P {
        let decoded: P = try params(as: P.self)
        do { try decoded.validate() } catch { throw .badRequest("parameters of \(method) are invalid: \(error.message)") }
        return decoded
    }

    private func params<P: Decodable>(as type: P.Type) throws(ControlError) -> P {
        do { return try JSONDecoder().decode(RequestParams<P>.self, from: line).params } catch let error as DecodingError {
            throw .badRequest("parameters of \(method) are invalid: \(describe(error))")
        } catch {
            throw .badRequest("parameters of \(method) are invalid: \(error)")
        }
    }

    /// `DecodingError` in a person's words: the parameter's path, then what is wrong with it.
    func describe(_ error: DecodingError) -> String {
        if case .dataCorrupted(let context) = error, context.codingPath.isEmpty,
           let hit = OversizedNumberProbe.find(in: line).first {
            return "parameter \(hit.path) is \(hit.value), which is not a whole number from -2^63 to 2^63-1"
        }
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            // The first key is the envelope's "params": the person's parameter names start after it.
            let keys = (codingPath + (last.map { [$0] } ?? [])).dropFirst().map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "\"params\"" : "parameter " + keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case let .keyNotFound(key, context): return "\(path(context.codingPath, key)) is missing"
        case let .valueNotFound(type, context): return "\(path(context.codingPath)) is null; give a \(type)"
        case let .typeMismatch(type, context): return "\(path(context.codingPath)) has the wrong type; give a \(type) (\(context.debugDescription))"
        case let .dataCorrupted(context): return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

/// The agent's end of the control socket. Its resources are bounded (Protocol.md §7): at most
/// `Limits.maxConnections` connections at once (the next one is answered `unavailable` and
/// closed), a connection must send its request line within `Limits.requestTimeout`, and a line
/// is at most `ControlWire.maxLineBytes` (a longer one is answered `bad_request`).
public struct ControlServer: Sendable {
    /// Handles a request; returns the result to encode.
    public typealias Handler = @Sendable (ControlRequest, ControlResponder) async throws -> any Encodable & Sendable

    /// Resource bounds.
    public struct Limits: Sendable {
        /// Connections served at once (64: the command line opens one per command).
        public var maxConnections = 64
        /// How long a new connection may take to send its request line (10 s); after it, a
        /// request may run as long as it needs (a migration takes minutes).
        public var requestTimeout: Duration = .seconds(10)
        /// The defaults.
        public init() {}
    }

    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let logger: Logger
    private let limits: Limits
    private let open = NIOLockedValueBox(0)
    /// One "refused" line per 10 s, with the count of the refusals left unlogged.
    private let refusalLog = SharedLogLineLimiter<String>()

    /// Binds the socket at `path` (replacing a stale one), mode 0600 from the moment it has
    /// that name: it is bound under a temporary name, restricted, then renamed into place.
    public static func bind(path: String, limits: Limits = Limits(), logger: Logger) async throws -> ControlServer {
        let staging = path + ".binding-\(getpid())"
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelInitializer { channel in
                // Out of descriptors, accepting pauses instead of spinning on EMFILE.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler(listener: "control", logger: logger))
                }
            }
            .bind(unixDomainSocketPath: staging, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        guard chmod(staging, 0o600) == 0, rename(staging, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await server.channel.close() // Best effort: the bind is abandoned either way.
            unlink(staging)
            throw ControlError.failed("cannot put the control socket at \(path) with mode 0600 (\(reason)): check the state directory's permissions")
        }
        return ControlServer(server: server, logger: logger, limits: limits)
    }

    /// Serves connections until cancelled.
    public func run(_ handler: @escaping Handler) async throws {
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    let admitted = open.withLockedValue { count in
                        guard count < limits.maxConnections else { return false }
                        count += 1
                        return true
                    }
                    guard admitted else {
                        group.addTask { await refuse(connection) }
                        continue
                    }
                    group.addTask {
                        await serve(connection, handler)
                        open.withLockedValue { $0 -= 1 }
                    }
                }
            }
        }
    }

    /// Stops accepting.
    public func close() async {
        try? await server.channel.close() // Already closed is fine: nothing more is accepted either way.
    }

    /// Answers a connection over the limit and closes it.
    private func refuse(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        if let suppressed = refusalLog.record("too many open") {
            logger.warning("control connection refused: too many open",
                           metadata: ["control.max_connections": "\(limits.maxConnections)", "log.suppressed": "\(suppressed)"])
        }
        // Best effort: a client that is gone needs no answer.
        try? await connection.executeThenClose { _, outbound in
            let error = ControlError.unavailable("the agent already serves \(limits.maxConnections) control connections; retry when one ends")
            try await outbound.write(ByteBuffer(bytes: try controlEncoder.encode(Wrapped(kind: .error, value: error)) + [0x0a]))
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ handler: Handler) async {
        let channel = connection.channel
        let timeout = limits.requestTimeout
        // Errors here are the client's connection failing (gone, reset): there is nobody to answer.
        try? await connection.executeThenClose { inbound, outbound in
            var reader = LineReader(inbound)
            let responder = ControlResponder(outbound: outbound, closed: channel.closeFuture)
            func send<T: Encodable>(_ kind: Wrapped<T>.Kind, _ value: T) async throws {
                let data = try controlEncoder.encode(Wrapped(kind: kind, value: value))
                try await outbound.write(ByteBuffer(bytes: data + [0x0a]))
            }
            let line: Data
            do {
                // The request line must come within the timeout: an idle connection is closed.
                let read = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        try await channel.close()
                    }
                    defer { group.cancelAll() }
                    return try await reader.next()
                }
                guard let read else { return }
                line = read
            } catch let error as ControlError {
                try await send(Wrapped<ControlError>.Kind.error, error)
                return
            }
            do {
                guard let head = try? JSONDecoder().decode(RequestHead.self, from: line) else { // the reason is given below
                    throw ControlError.badRequest("request is not a JSON object with a \"method\"")
                }
                let result = try await handler(ControlRequest(method: head.method, line: line), responder)
                try await send(Wrapped<AnyEncodable>.Kind.result, AnyEncodable(result))
            } catch let error as ControlError {
                try await send(Wrapped<ControlError>.Kind.error, error)
            } catch {
                logger.debug("control request failed", metadata: ["error": "\(error)"])
                try await send(Wrapped<ControlError>.Kind.error, ControlError.failed("\(error)"))
            }
        }
    }
}

struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

/// Splits an inbound byte stream into lines.
struct LineReader {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffer = ByteBuffer()

    init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) { iterator = inbound.makeAsyncIterator() }

    /// The next line without its newline, nil at the end of the stream; a line longer than
    /// `ControlWire.maxLineBytes` is a `bad_request`, however it arrives.
    mutating func next() async throws -> Data? {
        let tooLong = ControlError.badRequest("request line longer than \(ControlWire.maxLineBytes) bytes (1 MiB): send a smaller request")
        while true {
            if let newline = buffer.readableBytesView.firstIndex(of: 0x0a) {
                let length = newline - buffer.readerIndex
                guard length <= ControlWire.maxLineBytes else { throw tooLong }
                let line = buffer.readData(length: length)!
                buffer.moveReaderIndex(forwardBy: 1)
                return line
            }
            guard buffer.readableBytes <= ControlWire.maxLineBytes else { throw tooLong }
            guard var more = try await iterator.next() else { return nil }
            buffer.discardReadBytes()
            buffer.writeBuffer(&more)
        }
    }
}
