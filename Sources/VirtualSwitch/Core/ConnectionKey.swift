/// Which way a packet crosses a port.
public enum TrafficDirection: Hashable, Sendable {
    /// From the VM into the switch.
    case egress
    /// From the switch to the VM.
    case ingress
}

/// A tracked connection's key, from the VM's point of view (`local` is the VM's end). For
/// ICMP queries `localPort` is the identifier and `remotePort` is 0.
public struct ConnectionKey: Hashable, Sendable, CustomStringConvertible {
    /// IP protocol number.
    public var proto: UInt8
    /// The VM's address.
    public var localIP: IPAddress
    /// The VM's port (or ICMP identifier).
    public var localPort: UInt16
    /// The other end's address.
    public var remoteIP: IPAddress
    /// The other end's port.
    public var remotePort: UInt16

    /// A key.
    public init(proto: UInt8, localIP: IPAddress, localPort: UInt16, remoteIP: IPAddress, remotePort: UInt16) {
        self.proto = proto
        self.localIP = localIP
        self.localPort = localPort
        self.remoteIP = remoteIP
        self.remotePort = remotePort
    }

    /// The key of `packet` crossing the port in `direction`.
    init(_ packet: IPPacketInfo, direction: TrafficDirection) {
        let egress = direction == .egress
        proto = packet.proto
        localIP = egress ? packet.source : packet.destination
        remoteIP = egress ? packet.destination : packet.source
        if let identifier = packet.icmpIdentifier {
            localPort = identifier
            remotePort = 0
        } else {
            localPort = egress ? packet.sourcePort : packet.destinationPort
            remotePort = egress ? packet.destinationPort : packet.sourcePort
        }
    }

    /// The key of the packet quoted in an ICMP error that crosses the port in `direction`
    /// (the quoted packet went the other way).
    init(quoted: IPPacketInfo.Embedded, errorDirection: TrafficDirection) {
        let quotedEgress = errorDirection == .ingress
        proto = quoted.proto
        localIP = quotedEgress ? quoted.source : quoted.destination
        remoteIP = quotedEgress ? quoted.destination : quoted.source
        localPort = quotedEgress ? quoted.sourcePort : quoted.destinationPort
        remotePort = quotedEgress ? quoted.destinationPort : quoted.sourcePort
    }

    /// `tcp 10.77.0.2:40000 <-> 10.77.0.3:7`.
    public var description: String {
        let name = switch proto {
        case IPProtocol.tcp: "tcp"
        case IPProtocol.udp: "udp"
        case IPProtocol.icmp: "icmp"
        case IPProtocol.icmpv6: "icmpv6"
        default: "proto\(proto)"
        }
        return "\(name) \(localIP):\(localPort) <-> \(remoteIP):\(remotePort)"
    }
}

/// How far a tracked connection got.
public enum ConnectionState: Hashable, Sendable {
    /// Only the opening direction has been seen.
    case new
    /// Both directions have been seen.
    case established
    /// TCP: FIN both ways, or RST.
    case closing
}

/// One connection-tracking entry as it is exported and imported (ages instead of instants).
public struct TrackedConnection: Hashable, Sendable {
    /// The key.
    public var key: ConnectionKey
    /// Which side opened it.
    public var origin: TrafficDirection
    /// How far it got.
    public var state: ConnectionState
    /// Milliseconds since its last packet, at export.
    public var idleMilliseconds: UInt64
    /// TCP FINs seen: bit 0 from the VM, bit 1 towards the VM.
    public var finFlags: UInt8

    /// An entry.
    public init(key: ConnectionKey, origin: TrafficDirection, state: ConnectionState, idleMilliseconds: UInt64, finFlags: UInt8 = 0) {
        self.key = key
        self.origin = origin
        self.state = state
        self.idleMilliseconds = idleMilliseconds
        self.finFlags = finFlags
    }
}

/// Idle timeouts of tracked connections (close to Linux's nf_conntrack defaults).
public struct ConnectionTimeouts: Hashable, Sendable {
    /// TCP, before the reply direction is seen.
    public var tcpNew: Duration = .seconds(120)
    /// TCP, established.
    public var tcpEstablished: Duration = .seconds(86_400)
    /// TCP, after FIN both ways or RST.
    public var tcpClosing: Duration = .seconds(120)
    /// UDP, one direction seen.
    public var udpNew: Duration = .seconds(30)
    /// UDP, both directions seen.
    public var udpEstablished: Duration = .seconds(180)
    /// ICMP queries.
    public var icmp: Duration = .seconds(30)
    /// Other protocols.
    public var other: Duration = .seconds(600)

    /// The defaults.
    public init() {}

    func timeout(proto: UInt8, state: ConnectionState) -> Duration {
        switch proto {
        case IPProtocol.tcp: return state == .new ? tcpNew : state == .established ? tcpEstablished : tcpClosing
        case IPProtocol.udp: return state == .new ? udpNew : udpEstablished
        case IPProtocol.icmp, IPProtocol.icmpv6: return icmp
        default: return other
        }
    }
}
