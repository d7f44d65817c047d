import Foundation
public import MeshWire
public import NIOCore

/// Length-prefixed `AgentEnvelope`s over a secure channel's byte stream (Protocol.md §5.1).
public struct EnvelopeReader {
    /// Largest envelope accepted (16 MiB).
    public static let maxLength = 16 << 20
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffer = ByteBuffer()

    /// Reads from a channel's inbound stream.
    public init(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>) {
        iterator = inbound.makeAsyncIterator()
    }

    /// The next envelope, or nil at an orderly end of stream.
    /// Runs on the caller's actor (`nonisolated(nonsending)`): a reader kept in an actor reads without leaving it.
    nonisolated(nonsending) public mutating func next() async throws -> Hostmesh_V1_AgentEnvelope? {
        while true {
            if let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) {
                guard Int(length) <= Self.maxLength else {
                    throw SecureChannelError(.protocolViolation, "envelope of \(length) bytes exceeds \(Self.maxLength)")
                }
                if buffer.readableBytes >= 4 + Int(length) {
                    buffer.moveReaderIndex(forwardBy: 4)
                    let body = buffer.readSlice(length: Int(length))!
                    do { return try Hostmesh_V1_AgentEnvelope(serializedBytes: Array(body.readableBytesView)) } catch {
                        throw SecureChannelError(.protocolViolation, "envelope does not decode: \(error)")
                    }
                }
            }
            guard var more = try await iterator.next(isolation: #isolation) else {
                if buffer.readableBytes > 0 { throw SecureChannelError(.protocolViolation, "stream ended inside an envelope") }
                return nil
            }
            buffer.discardReadBytes()
            buffer.writeBuffer(&more)
        }
    }
}

/// Encodes envelopes with their length prefix.
public enum EnvelopeWriter {
    /// The framed bytes of one envelope.
    public static func frame(_ envelope: Hostmesh_V1_AgentEnvelope) -> ByteBuffer {
        let body: [UInt8] = try! envelope.serializedBytes() // proto3 messages without required fields always encode
        var out = ByteBuffer()
        out.reserveCapacity(4 + body.count)
        out.writeInteger(UInt32(body.count))
        out.writeBytes(body)
        return out
    }
}

extension SecureConnection {
    /// Sends one envelope on this connection and, when `expectAnswer`, reads one back, then
    /// closes the connection (the agents' one-shot request: a query, an abort, a join). Nil when
    /// no answer was expected, or the peer closed without one.
    public func request(_ envelope: Hostmesh_V1_AgentEnvelope, expectAnswer: Bool = true) async throws -> Hostmesh_V1_AgentEnvelope? {
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(EnvelopeWriter.frame(envelope))
            guard expectAnswer else { return nil }
            var reader = EnvelopeReader(inbound)
            return try await reader.next()
        }
    }
}
