/// A port's security policy: anti-spoofing and a stateful firewall in each direction.
///
/// The firewall judges only packets that open a connection; everything belonging to a tracked
/// connection (replies included) passes, which is why the connection-tracking table moves with
/// the VM at migration.
public struct SecurityPolicy: Hashable, Sendable {
    /// When true, frames from the VM must carry the port's MAC as source (Ethernet and ARP)
    /// and an allowed IP as source (IPv4, IPv6, ARP); other EtherTypes are dropped.
    public var antiSpoofing: Bool
    /// New connections towards the VM.
    public var ingress: FirewallRules
    /// New connections from the VM.
    public var egress: FirewallRules
    /// Also allow the IPv6 link-local address derived from the port's MAC (EUI-64), and `::`
    /// for ICMPv6 duplicate address detection and MLD.
    public var allowIPv6LinkLocal: Bool
    /// Also allow a DHCP client's `0.0.0.0:68 -> 255.255.255.255:67` before it has an address.
    public var allowDHCPClient: Bool
    /// When true (Linux's default, `nf_conntrack_tcp_loose`), a TCP segment of an untracked
    /// connection opens one if the rules allow it, so connections survive a lost table (an agent
    /// restart). When false, only a SYN opens a TCP connection; other segments of untracked
    /// connections are dropped (`conntrack-invalid`), as security groups drop INVALID, and
    /// connections survive a move only because the table moves with the port.
    public var looseTCPPickup: Bool

    /// A policy; by default anti-spoofing on and everything allowed in both directions.
    public init(antiSpoofing: Bool = true, ingress: FirewallRules = .allowAll, egress: FirewallRules = .allowAll,
                allowIPv6LinkLocal: Bool = true, allowDHCPClient: Bool = true, looseTCPPickup: Bool = true) {
        self.antiSpoofing = antiSpoofing
        self.ingress = ingress
        self.egress = egress
        self.allowIPv6LinkLocal = allowIPv6LinkLocal
        self.allowDHCPClient = allowDHCPClient
        self.looseTCPPickup = looseTCPPickup
    }

    /// No anti-spoofing, everything allowed (a trusted port).
    public static let open = SecurityPolicy(antiSpoofing: false)
}

/// The allow rules for one direction.
public enum FirewallRules: Hashable, Sendable {
    /// Every new connection is allowed.
    case allowAll
    /// Only new connections matching one of the rules (default deny). `.rules([])` denies all
    /// new connections in this direction; replies to the other direction's still pass.
    case rules([FirewallRule])

    /// True when a new connection with this opening packet is allowed.
    func allows(proto: UInt8, destinationPort: UInt16, remote: IPAddress) -> Bool {
        switch self {
        case .allowAll: return true
        case let .rules(rules): return rules.contains { $0.matches(proto: proto, destinationPort: destinationPort, remote: remote) }
        }
    }
}

/// One allow rule: a protocol, a destination port range and the other end's prefix.
public struct FirewallRule: Hashable, Sendable {
    /// IP protocol number (`IPProtocol.tcp` …); nil matches any protocol.
    public var proto: UInt8?
    /// Destination port range of the opening packet (TCP/UDP only); nil matches any port.
    public var ports: ClosedRange<UInt16>?
    /// The other end (source for ingress, destination for egress); nil matches any address.
    public var remote: IPPrefix?

    /// A rule.
    public init(proto: UInt8? = nil, ports: ClosedRange<UInt16>? = nil, remote: IPPrefix? = nil) {
        self.proto = proto
        self.ports = ports
        self.remote = remote
    }

    /// Any TCP connection to `port`.
    public static func tcp(port: UInt16, from remote: IPPrefix? = nil) -> FirewallRule {
        FirewallRule(proto: IPProtocol.tcp, ports: port...port, remote: remote)
    }

    func matches(proto: UInt8, destinationPort: UInt16, remote: IPAddress) -> Bool {
        if let required = self.proto, required != proto { return false }
        if let ports, proto == IPProtocol.tcp || proto == IPProtocol.udp, !ports.contains(destinationPort) { return false }
        if let prefix = self.remote, !prefix.contains(remote) { return false }
        return true
    }
}
