import Foundation
public import Logging
import NIOCore
import NIOFoundationCompat
import NIOPosix

/// Answers one request on a control connection: send progress with `progress(_:)`, then return
/// the result or throw a `ControlError` (any other error becomes code "failed").
public struct ControlResponder: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>

    /// Sends one progress line.
    public func progress(_ value: some Encodable & Sendable) async throws {
        try await outbound.write(ByteBuffer(bytes: try controlEncoder.encode(Wrapped(kind: .progress, value: value)) + [0x0a]))
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

/// The agent's end of the control socket.
public struct ControlServer: Sendable {
    /// Handles a request; returns the result to encode.
    public typealias Handler = @Sendable (ControlRequest, ControlResponder) async throws -> any Encodable & Sendable

    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let logger: Logger

    /// Binds the socket at `path` (replacing a stale one) with mode 0600.
    public static func bind(path: String, logger: Logger) async throws -> ControlServer {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        chmod(path, 0o600)
        return ControlServer(server: server, logger: logger)
    }

    /// Serves connections until cancelled.
    public func run(_ handler: @escaping Handler) async throws {
        try await server.executeThenClose { inbound in
            try await withThrowingDiscardingTaskGroup { group in
                for try await connection in inbound {
                    group.addTask { await serve(connection, handler) }
                }
            }
        }
    }

    /// Stops accepting.
    public func close() async { try? await server.channel.close() } // best effort: already closed is closed

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ handler: Handler) async {
        // A client that hangs up mid-request ends only its own connection; errors it should see are sent to it below.
        try? await connection.executeThenClose { inbound, outbound in
            var reader = LineReader(inbound)
            let responder = ControlResponder(outbound: outbound)
            func send<T: Encodable>(_ kind: Wrapped<T>.Kind, _ value: T) async throws {
                let data = try controlEncoder.encode(Wrapped(kind: kind, value: value))
                try await outbound.write(ByteBuffer(bytes: data + [0x0a]))
            }
            guard let line = try await reader.next() else { return }
            do {
                guard let head = try? JSONDecoder().decode(RequestHead.self, from: line) else { // refused below, with the reason
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

    mutating func next() async throws -> Data? {
        while true {
            if let newline = buffer.readableBytesView.firstIndex(of: 0x0a) {
                let length = newline - buffer.readerIndex
                let line = buffer.readData(length: length)!
                buffer.moveReaderIndex(forwardBy: 1)
                return line
            }
            guard buffer.readableBytes <= ControlWire.maxLineBytes else { throw ControlError.badRequest("line longer than 1 MiB") }
            guard var more = try await iterator.next() else { return nil }
            buffer.discardReadBytes()
            buffer.writeBuffer(&more)
        }
    }
}
