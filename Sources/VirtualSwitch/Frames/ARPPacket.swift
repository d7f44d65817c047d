public import NIOCore

/// An Ethernet/IPv4 ARP or RARP packet (RFC 826, RFC 903).
public struct ARPPacket: Sendable, Equatable {
    /// ARP request.
    public static let request: UInt16 = 1
    /// ARP reply.
    public static let reply: UInt16 = 2
    /// RARP "request reverse" (what QEMU's self-announce sends).
    public static let reverseRequest: UInt16 = 3
    /// Bytes of an Ethernet/IPv4 ARP packet.
    public static let length = 28

    /// Operation code.
    public var operation: UInt16
    /// Sender hardware address.
    public var senderMAC: MACAddress
    /// Sender protocol address.
    public var senderIP: IPAddress
    /// Target hardware address.
    public var targetMAC: MACAddress
    /// Target protocol address.
    public var targetIP: IPAddress

    /// A packet.
    public init(operation: UInt16, senderMAC: MACAddress, senderIP: IPAddress, targetMAC: MACAddress, targetIP: IPAddress) {
        self.operation = operation
        self.senderMAC = senderMAC
        self.senderIP = senderIP
        self.targetMAC = targetMAC
        self.targetIP = targetIP
    }

    /// Parses the packet following the Ethernet header; nil unless Ethernet/IPv4 ARP.
    public init?(frame: ByteBuffer) {
        let base = frame.readerIndex + EthernetHeader.length
        guard frame.readableBytes >= EthernetHeader.length + Self.length,
              frame.getInteger(at: base, as: UInt16.self) == 1,            // hardware type Ethernet
              frame.getInteger(at: base + 2, as: UInt16.self) == EtherType.ipv4,
              frame.getInteger(at: base + 4, as: UInt8.self) == 6,
              frame.getInteger(at: base + 5, as: UInt8.self) == 4,
              let operation = frame.getInteger(at: base + 6, as: UInt16.self),
              let senderMAC = frame.getBytes(at: base + 8, length: 6).flatMap(MACAddress.init(bytes:)),
              let senderIP = frame.getInteger(at: base + 14, as: UInt32.self),
              let targetMAC = frame.getBytes(at: base + 18, length: 6).flatMap(MACAddress.init(bytes:)),
              let targetIP = frame.getInteger(at: base + 24, as: UInt32.self)
        else { return nil }
        self.init(operation: operation, senderMAC: senderMAC, senderIP: .v4(senderIP), targetMAC: targetMAC, targetIP: .v4(targetIP))
    }

    /// True for a gratuitous ARP (request or reply announcing the sender's own address).
    public var isGratuitous: Bool {
        (operation == Self.request || operation == Self.reply) && senderIP == targetIP && senderIP != .unspecifiedV4
    }

    /// A whole Ethernet frame carrying this packet (padded to the 60-byte minimum).
    public func frame(destination: MACAddress, source: MACAddress, etherType: UInt16 = EtherType.arp,
                      allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 60)
        EthernetHeader.write(destination: destination, source: source, etherType: etherType, to: &buffer)
        buffer.writeInteger(UInt16(1))
        buffer.writeInteger(EtherType.ipv4)
        buffer.writeInteger(UInt8(6))
        buffer.writeInteger(UInt8(4))
        buffer.writeInteger(operation)
        buffer.writeBytes(senderMAC.bytes)
        buffer.writeBytes(senderIP.bytes)
        buffer.writeBytes(targetMAC.bytes)
        buffer.writeBytes(targetIP.bytes)
        buffer.writeRepeatingByte(0, count: 60 - buffer.readableBytes)
        return buffer
    }
}
