public import NIOCore

/// A secure connection held open across several steps of a protocol (a migration's control
/// channel: prepare, then commit and its answer, minutes apart), without NIO's deprecated
/// unscoped `inbound`/`outbound`: the scoped `executeThenClose` runs in a task this value owns
/// until `close()`, and hands out its writer and its one inbound stream.
public struct HeldConnection: Sendable {
    /// The connection (its peer, session and channel).
    public let connection: SecureConnection
    /// Writes to the peer.
    public let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let inbound: NIOAsyncChannelInboundStream<ByteBuffer>
    private let release: AsyncStream<Void>.Continuation
    private let scope: Task<Void, any Error>

    private struct Streams: Sendable {
        let inbound: NIOAsyncChannelInboundStream<ByteBuffer>
        let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    }

    /// Holds `connection` open until `close()`; throws if it closed before it could be held.
    public static func hold(_ connection: SecureConnection) async throws -> HeldConnection {
        let (streams, handOver) = AsyncStream.makeStream(of: Streams.self)
        let (released, release) = AsyncStream.makeStream(of: Void.self)
        let scope = Task {
            try await connection.channel.executeThenClose { inbound, outbound in
                handOver.yield(Streams(inbound: inbound, outbound: outbound))
                handOver.finish()
                for await _ in released {} // until close()
            }
        }
        var iterator = streams.makeAsyncIterator()
        guard let held = await iterator.next() else {
            _ = await scope.result
            throw SecureChannelError(.normal, "the connection closed before it could be used")
        }
        return HeldConnection(connection: connection, outbound: held.outbound, inbound: held.inbound, release: release, scope: scope)
    }

    /// A reader of the peer's envelopes (make one: the inbound stream can be read only once).
    public func reader() -> EnvelopeReader { EnvelopeReader(inbound) }

    /// Closes the connection and waits for its scope to end.
    public func close() async {
        release.finish()
        _ = await scope.result // an error here is the connection's end, which close() asked for
    }
}
