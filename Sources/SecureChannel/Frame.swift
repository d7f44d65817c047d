public import NIOCore

/// The outer framing of a channel (Protocol.md §3.2):
///
///     frame  = length:u32be type:u8 body      length = 1 + len(body)
///
/// Every byte after the TCP connect is a frame; nothing else is ever sent.
public enum FrameType: UInt8, Sendable {
    /// Noise XX message 1 with domain hint and MAC.
    case handshakeInit = 0x01
    /// Noise XX message 2.
    case handshakeResponse = 0x02
    /// Noise XX message 3.
    case handshakeFinish = 0x03
    /// Cleartext, advisory rejection of a handshake (CloseReason).
    case reject = 0x04
    /// Initiator to responder, between message 1 and message 3 only: bytes the responder
    /// discards, which fill the connection's first round trip (Protocol.md §3.2).
    case filler = 0x05
    /// An AEAD-sealed record.
    case record = 0x10
}

/// One decoded frame. `body` is a slice of the receive buffer.
public struct Frame: Sendable {
    /// Frame type.
    public var type: FrameType
    /// Frame body (after the type byte).
    public var body: ByteBuffer
    /// Value of the length field (1 + body length), needed for a record's associated data.
    public var lengthField: UInt32 { UInt32(body.readableBytes + 1) }
}

/// Splits a byte stream into frames, checking sizes before buffering anything large.
public struct FrameDecoder: Sendable {
    /// Largest handshake or reject frame (length field), 4 KiB: the largest real one (message 2
    /// or 3 with a certificate) is under 1 KiB. Before authentication nothing bigger is ever
    /// buffered, so an unauthenticated connection holds a few KiB at most (Protocol.md §3.2).
    public static let maxHandshakeFrameLength = 4096
    /// Record frame overhead beyond the inner plaintext: type, counter, inner type, tag.
    public static let recordOverhead = 1 + 8 + 1 + 16
    /// Filler a responder takes on one connection, bytes on the wire (each frame's 5-byte header
    /// included, so that empty frames are bounded too); past it the initiator is misbehaving and
    /// the channel is closed (Protocol.md §3.2).
    public static let maxFillerBytes = 64 << 10

    /// Largest record plaintext (application bytes per record) this side accepts.
    public var maxRecordPayload: Int
    /// Whether record frames are accepted yet. Until this side holds traffic keys a record
    /// cannot be opened anyway, so one announced before then is refused at its header instead
    /// of buffered: a record-sized frame from an unauthenticated peer costs nothing (issue 19).
    public var acceptsRecords: Bool
    /// Whether Filler frames are accepted now: by a responder that accepts them, between its
    /// answer to message 1 and message 3 only (Protocol.md §3.2). Refused at the header otherwise.
    public var acceptsFiller = false

    /// A decoder accepting records of up to `maxRecordPayload` application bytes (from the start,
    /// unless `acceptsRecords` is false: a channel's decoder starts refusing them).
    public init(maxRecordPayload: Int, acceptsRecords: Bool = true) {
        self.maxRecordPayload = maxRecordPayload
        self.acceptsRecords = acceptsRecords
    }

    /// Takes the next whole frame off the front of `buffer`, or returns nil if more bytes are
    /// needed. Throws on an unknown type or an oversized length, as soon as the 5-byte header is in.
    public func next(from buffer: inout ByteBuffer) throws(SecureChannelError) -> Frame? {
        guard let size = try frameSize(at: buffer), buffer.readableBytes >= size,
              let type = FrameType(rawValue: buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let body = buffer.readSlice(length: size - 5)! // size checked above
        return Frame(type: type, body: body)
    }

    /// The whole size (length field included) of the frame starting at `buffer`'s reader index,
    /// once its 5-byte header is in and checked (type known, length within the limit); nil while
    /// the header is incomplete. Only a checked size may be used to reserve memory.
    public func frameSize(at buffer: ByteBuffer) throws(SecureChannelError) -> Int? {
        guard buffer.readableBytes >= 5,
              let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
              let rawType = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self) else { return nil }
        guard let type = FrameType(rawValue: rawType) else {
            throw SecureChannelError(.protocolViolation, "unknown frame type 0x\(String(rawType, radix: 16))")
        }
        guard length >= 1 else { throw SecureChannelError(.protocolViolation, "frame length 0") }
        guard type != .record || acceptsRecords else {
            throw SecureChannelError(.protocolViolation, "record frame (\(length) bytes) before the handshake completed")
        }
        guard type != .filler || acceptsFiller else {
            throw SecureChannelError(.protocolViolation, "filler frame where none is accepted (only from an initiator, after message 1 and before message 3, to a responder that accepts filler)")
        }
        let limit = type == .record ? maxRecordPayload + Self.recordOverhead : Self.maxHandshakeFrameLength
        guard Int(length) <= limit else {
            throw SecureChannelError(.frameTooLarge, "\(type) frame of \(length) bytes exceeds the limit of \(limit)")
        }
        return 4 + Int(length)
    }

    /// Encodes a frame with the given body.
    public static func encode(_ type: FrameType, body: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt32(body.count + 1))
        buffer.writeInteger(type.rawValue)
        buffer.writeBytes(body)
    }
}
