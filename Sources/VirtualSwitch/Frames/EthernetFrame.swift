public import NIOCore

/// EtherTypes the switch looks at.
public enum EtherType {
    /// IPv4.
    public static let ipv4: UInt16 = 0x0800
    /// ARP.
    public static let arp: UInt16 = 0x0806
    /// Reverse ARP: what QEMU sends to announce a NIC after migration (`announce-self`).
    public static let rarp: UInt16 = 0x8035
    /// IPv6.
    public static let ipv6: UInt16 = 0x86DD
    /// IEEE 802.1Q VLAN tag.
    public static let vlan: UInt16 = 0x8100
    /// IEEE 802.1ad service tag.
    public static let serviceVLAN: UInt16 = 0x88A8
}

/// The Ethernet header of a frame held in a `ByteBuffer` (from its reader index).
public struct EthernetHeader: Sendable, Equatable {
    /// Length of an untagged Ethernet header.
    public static let length = 14
    /// Largest frame the switch forwards (a 9000-byte jumbo payload, its header and a VLAN tag).
    public static let maxFrameLength = 9018

    /// Destination MAC.
    public let destination: MACAddress
    /// Source MAC.
    public let source: MACAddress
    /// EtherType (or TPID of a VLAN tag).
    public let etherType: UInt16

    /// Parses the header; nil for a runt (shorter than 14 bytes) or an oversized frame.
    public init?(_ frame: ByteBuffer) {
        let base = frame.readerIndex
        guard frame.readableBytes >= Self.length, frame.readableBytes <= Self.maxFrameLength,
              let dstHigh = frame.getInteger(at: base, as: UInt16.self), let dstLow = frame.getInteger(at: base + 2, as: UInt32.self),
              let srcHigh = frame.getInteger(at: base + 6, as: UInt16.self), let srcLow = frame.getInteger(at: base + 8, as: UInt32.self),
              let etherType = frame.getInteger(at: base + 12, as: UInt16.self)
        else { return nil }
        destination = MACAddress(rawValue: UInt64(dstHigh) << 32 | UInt64(dstLow))
        source = MACAddress(rawValue: UInt64(srcHigh) << 32 | UInt64(srcLow))
        self.etherType = etherType
    }

    /// Appends a 14-byte header (destination, source, EtherType) to `buffer`.
    public static func write(destination: MACAddress, source: MACAddress, etherType: UInt16, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt16(truncatingIfNeeded: destination.rawValue >> 32))
        buffer.writeInteger(UInt32(truncatingIfNeeded: destination.rawValue))
        buffer.writeInteger(UInt16(truncatingIfNeeded: source.rawValue >> 32))
        buffer.writeInteger(UInt32(truncatingIfNeeded: source.rawValue))
        buffer.writeInteger(etherType)
    }
}
