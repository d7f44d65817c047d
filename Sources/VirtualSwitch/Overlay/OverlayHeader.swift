public import NIOCore

/// The clear header of every overlay datagram (Protocol.md §8.2). 24 bytes, big-endian; it is
/// the AEAD's additional data, so it is authenticated though not encrypted:
///
/// ```
///  0        1        2        3
/// +--------+--------+--------+--------+
/// |version | type   | flags  | key id |
/// +--------+--------+--------+--------+
/// |           segment id (u32)        |   0 for control datagrams
/// +--------+--------+--------+--------+
/// |        sender host tag (u64)      |
/// |                                   |
/// +--------+--------+--------+--------+
/// |    counter (u64, nonce, >= 1)     |
/// |                                   |
/// +--------+--------+--------+--------+
/// | ciphertext ... | 16-byte AEAD tag |
/// ```
public struct OverlayHeader: Hashable, Sendable {
    /// Header length in bytes.
    public static let length = 24
    /// The only version this implementation speaks.
    public static let currentVersion: UInt8 = 1

    /// What the datagram carries.
    public enum Kind: UInt8, Sendable {
        /// One Ethernet frame.
        case frame = 1
        /// A `VSwitchControl` protobuf message (location updates).
        case control = 2
    }

    /// Flag: a straggler re-sent by the VM's old host; the receiver MUST NOT forward it again.
    public static let flagForwarded: UInt8 = 0x01
    /// Flag: one of the copies of a flooded frame (broadcast, multicast, unknown unicast) sent to
    /// every host of the flood list; a stretched link's gateway never relays it (§8.9).
    public static let flagFlooded: UInt8 = 0x02

    /// Protocol version.
    public var version: UInt8
    /// Payload kind.
    public var kind: Kind
    /// Flags.
    public var flags: UInt8
    /// Which of the pair's keys sealed the payload (changes on rekey).
    public var keyID: UInt8
    /// The frame's segment (0 for control).
    public var segment: UInt32
    /// The sender's host tag (`OverlayKeys.hostTag`).
    public var senderTag: UInt64
    /// The per-direction counter, also the AEAD nonce.
    public var counter: UInt64

    /// A header.
    public init(version: UInt8 = Self.currentVersion, kind: Kind, flags: UInt8, keyID: UInt8, segment: UInt32,
                senderTag: UInt64, counter: UInt64) {
        self.version = version
        self.kind = kind
        self.flags = flags
        self.keyID = keyID
        self.segment = segment
        self.senderTag = senderTag
        self.counter = counter
    }

    /// Why a datagram's header was rejected.
    public enum ParseError: Error, Hashable, Sendable {
        /// Fewer bytes than a header and a tag.
        case truncated
        /// A version other than 1.
        case unknownVersion(UInt8)
        /// A kind other than frame or control.
        case unknownKind(UInt8)
    }

    /// Parses the header at the reader index of `datagram` (does not move it).
    public init(parsing datagram: ByteBuffer) throws(ParseError) {
        let base = datagram.readerIndex
        guard datagram.readableBytes >= Self.length + 16,
              let version = datagram.getInteger(at: base, as: UInt8.self),
              let kindByte = datagram.getInteger(at: base + 1, as: UInt8.self),
              let flags = datagram.getInteger(at: base + 2, as: UInt8.self),
              let keyID = datagram.getInteger(at: base + 3, as: UInt8.self),
              let segment = datagram.getInteger(at: base + 4, as: UInt32.self),
              let tag = datagram.getInteger(at: base + 8, as: UInt64.self),
              let counter = datagram.getInteger(at: base + 16, as: UInt64.self)
        else { throw .truncated }
        guard version == Self.currentVersion else { throw .unknownVersion(version) }
        guard let kind = Kind(rawValue: kindByte) else { throw .unknownKind(kindByte) }
        self.init(version: version, kind: kind, flags: flags, keyID: keyID, segment: segment, senderTag: tag, counter: counter)
    }

    /// Appends the header to `buffer`.
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(version)
        buffer.writeInteger(kind.rawValue)
        buffer.writeInteger(flags)
        buffer.writeInteger(keyID)
        buffer.writeInteger(segment)
        buffer.writeInteger(senderTag)
        buffer.writeInteger(counter)
    }

    /// The header's bytes (the AEAD's additional data).
    public var bytes: [UInt8] {
        var buffer = ByteBuffer()
        write(to: &buffer)
        return Array(buffer.readableBytesView)
    }
}
