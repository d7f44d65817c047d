import NIOCore

/// Splits the QMP byte stream into messages: QEMU ends every JSON object with a newline
/// (`\r\n` in practice; the `\r` is JSON whitespace and left in place). Blank lines are dropped.
///
/// A line longer than `maxLength` is an error rather than unbounded buffering: a QEMU that
/// sends megabytes without a newline is not speaking QMP.
struct QMPLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maxLength: Int
    /// Bytes already scanned for a newline, so each byte is examined once.
    private var scanned = 0

    init(maxLength: Int) {
        self.maxLength = maxLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        if let newline = view.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            // The newline itself is consumed and not passed on.
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.contains(where: { !Self.isWhitespace($0) }) {
                context.fireChannelRead(wrapInboundOut(line))
            }
            return .continue
        }
        scanned = view.count
        if scanned > maxLength {
            throw QMPError.messageTooLong(limit: maxLength)
        }
        return .needMoreData
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial line at EOF is QEMU dying mid-message: nothing to deliver.
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
    }
}
