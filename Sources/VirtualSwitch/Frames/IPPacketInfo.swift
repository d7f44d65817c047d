public import NIOCore

/// IP protocol numbers the switch looks at.
public enum IPProtocol {
    /// ICMP.
    public static let icmp: UInt8 = 1
    /// TCP.
    public static let tcp: UInt8 = 6
    /// UDP.
    public static let udp: UInt8 = 17
    /// ICMPv6.
    public static let icmpv6: UInt8 = 58
}

/// What the firewall and the anti-spoofing check need from an IPv4 or IPv6 packet.
public struct IPPacketInfo: Sendable, Equatable {
    /// How the firewall treats an ICMP message.
    public enum ICMPKind: Sendable, Equatable {
        /// Echo request or other query: tracked by identifier.
        case query(identifier: UInt16)
        /// Echo reply: belongs to the query with the same identifier.
        case queryReply(identifier: UInt16)
        /// An error about another packet (unreachable, time exceeded, …); `embedded` is the
        /// header of the packet it is about, as far as it could be parsed.
        case error(embedded: Embedded?)
        /// IPv6 neighbour discovery or multicast listener messages: link plumbing like ARP.
        case linkLocalControl
        /// Anything else.
        case other
    }

    /// The five-tuple of the packet quoted in an ICMP error.
    public struct Embedded: Sendable, Equatable {
        /// Source of the quoted packet.
        public var source: IPAddress
        /// Destination of the quoted packet.
        public var destination: IPAddress
        /// Protocol of the quoted packet.
        public var proto: UInt8
        /// Source port (or echo identifier).
        public var sourcePort: UInt16
        /// Destination port (0 for echo).
        public var destinationPort: UInt16
    }

    /// Source address.
    public var source: IPAddress
    /// Destination address.
    public var destination: IPAddress
    /// Transport protocol (after IPv6 extension headers).
    public var proto: UInt8
    /// TCP/UDP source port (0 otherwise).
    public var sourcePort: UInt16
    /// TCP/UDP destination port (0 otherwise).
    public var destinationPort: UInt16
    /// TCP flags (0 otherwise).
    public var tcpFlags: UInt8
    /// ICMP/ICMPv6 classification (nil for other protocols).
    public var icmp: ICMPKind?
    /// True for a fragment other than the first (no transport header).
    public var isLaterFragment: Bool

    /// TCP flag bits.
    public enum TCPFlag {
        /// FIN.
        public static let fin: UInt8 = 0x01
        /// SYN.
        public static let syn: UInt8 = 0x02
        /// RST.
        public static let rst: UInt8 = 0x04
        /// ACK.
        public static let ack: UInt8 = 0x10
    }

    /// Parses the IP packet after the Ethernet header of `frame`; nil if truncated or malformed.
    public init?(frame: ByteBuffer, etherType: UInt16) {
        let start = frame.readerIndex + EthernetHeader.length
        let end = frame.readerIndex + frame.readableBytes
        switch etherType {
        case EtherType.ipv4: self.init(ipv4: frame, at: start, end: end, quoted: false)
        case EtherType.ipv6: self.init(ipv6: frame, at: start, end: end, quoted: false)
        default: return nil
        }
    }

    private init?(ipv4 buffer: ByteBuffer, at start: Int, end: Int, quoted: Bool) {
        guard end - start >= 20, let versionIHL = buffer.getInteger(at: start, as: UInt8.self), versionIHL >> 4 == 4,
              let fragment = buffer.getInteger(at: start + 6, as: UInt16.self),
              let proto = buffer.getInteger(at: start + 9, as: UInt8.self),
              let source = buffer.getInteger(at: start + 12, as: UInt32.self),
              let destination = buffer.getInteger(at: start + 16, as: UInt32.self)
        else { return nil }
        let headerLength = Int(versionIHL & 0x0F) * 4
        guard headerLength >= 20, start + headerLength <= end else { return nil }
        self.init(source: .v4(source), destination: .v4(destination), proto: proto,
                  laterFragment: fragment & 0x1FFF != 0, buffer: buffer, transport: start + headerLength, end: end, quoted: quoted)
    }

    private init?(ipv6 buffer: ByteBuffer, at start: Int, end: Int, quoted: Bool) {
        guard end - start >= 40, let version = buffer.getInteger(at: start, as: UInt8.self), version >> 4 == 6,
              var next = buffer.getInteger(at: start + 6, as: UInt8.self),
              let source = buffer.getBytes(at: start + 8, length: 16).flatMap(IPAddress.init(bytes:)),
              let destination = buffer.getBytes(at: start + 24, length: 16).flatMap(IPAddress.init(bytes:))
        else { return nil }
        var offset = start + 40
        var laterFragment = false
        // Walk the extension headers a guest commonly sends (MLD reports carry hop-by-hop).
        for _ in 0..<8 {
            switch next {
            case 0, 43, 60: // hop-by-hop, routing, destination options
                guard let header = buffer.getInteger(at: offset, as: UInt8.self),
                      let length = buffer.getInteger(at: offset + 1, as: UInt8.self) else { return nil }
                next = header
                offset += (Int(length) + 1) * 8
            case 44: // fragment
                guard let header = buffer.getInteger(at: offset, as: UInt8.self),
                      let fragmentOffset = buffer.getInteger(at: offset + 2, as: UInt16.self) else { return nil }
                next = header
                laterFragment = fragmentOffset >> 3 != 0
                offset += 8
            default:
                guard offset <= end else { return nil }
                self.init(source: source, destination: destination, proto: next, laterFragment: laterFragment,
                          buffer: buffer, transport: offset, end: end, quoted: quoted)
                return
            }
        }
        return nil
    }

    private init?(source: IPAddress, destination: IPAddress, proto: UInt8, laterFragment: Bool,
                  buffer: ByteBuffer, transport: Int, end: Int, quoted: Bool) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.isLaterFragment = laterFragment
        sourcePort = 0
        destinationPort = 0
        tcpFlags = 0
        icmp = nil
        guard !laterFragment else { return }
        switch proto {
        case IPProtocol.tcp, IPProtocol.udp:
            // A quoted packet in an ICMP error carries at least 8 bytes of its transport header.
            guard end - transport >= (quoted || proto == IPProtocol.udp ? 8 : 20),
                  let sourcePort = buffer.getInteger(at: transport, as: UInt16.self),
                  let destinationPort = buffer.getInteger(at: transport + 2, as: UInt16.self)
            else { return nil }
            self.sourcePort = sourcePort
            self.destinationPort = destinationPort
            if proto == IPProtocol.tcp, !quoted { tcpFlags = buffer.getInteger(at: transport + 13, as: UInt8.self) ?? 0 }
        case IPProtocol.icmp, IPProtocol.icmpv6:
            guard end - transport >= 8, let type = buffer.getInteger(at: transport, as: UInt8.self),
                  let identifier = buffer.getInteger(at: transport + 4, as: UInt16.self) else { return nil }
            icmp = Self.classify(v6: proto == IPProtocol.icmpv6, type: type, identifier: identifier) {
                guard !quoted else { return nil }
                let inner = proto == IPProtocol.icmpv6
                    ? IPPacketInfo(ipv6: buffer, at: transport + 8, end: end, quoted: true)
                    : IPPacketInfo(ipv4: buffer, at: transport + 8, end: end, quoted: true)
                return inner.map { Embedded(source: $0.source, destination: $0.destination, proto: $0.proto,
                                            sourcePort: $0.icmpIdentifier ?? $0.sourcePort,
                                            destinationPort: $0.icmpIdentifier == nil ? $0.destinationPort : 0) }
            }
        default:
            break
        }
    }

    private static func classify(v6: Bool, type: UInt8, identifier: UInt16, embedded: () -> Embedded?) -> ICMPKind {
        if v6 {
            switch type {
            case 128: return .query(identifier: identifier)
            case 129: return .queryReply(identifier: identifier)
            case 1, 2, 3, 4: return .error(embedded: embedded())
            case 130, 131, 132, 133, 134, 135, 136, 137, 143: return .linkLocalControl
            default: return .other
            }
        }
        switch type {
        case 8, 13: return .query(identifier: identifier)
        case 0, 14: return .queryReply(identifier: identifier)
        case 3, 11, 12: return .error(embedded: embedded())
        default: return .other
        }
    }

    /// The echo identifier of an ICMP query or reply.
    public var icmpIdentifier: UInt16? {
        switch icmp {
        case let .query(identifier), let .queryReply(identifier): return identifier
        default: return nil
        }
    }
}
