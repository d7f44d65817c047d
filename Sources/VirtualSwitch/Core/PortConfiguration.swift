public import MeshTime

/// A named network: every port on it shares one segment id, locally and across the overlay.
public struct Network: Hashable, Sendable {
    /// The network's name (how ports refer to it; mapped by name across domains).
    public var name: String
    /// Its segment id, the same on every host of the domain.
    public var segment: SegmentID

    /// A network.
    public init(name: String, segment: SegmentID) {
        self.name = name
        self.segment = segment
    }
}

/// What a port is: everything the agent knows about a VM NIC before any traffic.
public struct PortConfiguration: Hashable, Sendable {
    /// The port's id, kept across migrations.
    public var id: PortID
    /// The network (by name) the port is on.
    public var network: String
    /// The VM NIC's MAC.
    public var mac: MACAddress
    /// Addresses the VM may use: exact addresses (`/32`, `/128`) are bound to the MAC at once
    /// (proxy ARP answers for them); within wider prefixes the switch learns what the VM uses.
    public var allowedIPs: [IPPrefix]
    /// Anti-spoofing and firewall.
    public var policy: SecurityPolicy

    /// A port configuration.
    public init(id: PortID, network: String, mac: MACAddress, allowedIPs: [IPPrefix], policy: SecurityPolicy = SecurityPolicy()) {
        self.id = id
        self.network = network
        self.mac = mac
        self.allowedIPs = allowedIPs
        self.policy = policy
    }

    /// The exact addresses among `allowedIPs`.
    var boundIPs: [IPAddress] { allowedIPs.filter(\.isHost).map(\.address) }
}

/// Where a port is in its life, which is mostly where its VM is in a migration.
public enum PortLifecycle: Hashable, Sendable, CustomStringConvertible {
    /// Created fully configured for an incoming VM but inactive: nothing in or out, until the
    /// VM's first announcement (RARP or gratuitous ARP from its MAC) activates it.
    case blocked
    /// Forwarding normally.
    case active
    /// The source at switchover: nothing in or out; counters and connection tracking are final.
    case frozen
    /// The source after switchover: frames still arriving for the VM's MAC are sent to `host`
    /// until `until`, then the port is removed.
    case forwardingStragglers(to: HostID, until: MeshInstant)

    /// `blocked`, `active`, `frozen`, `forwarding-stragglers`.
    public var description: String {
        switch self {
        case .blocked: "blocked"
        case .active: "active"
        case .frozen: "frozen"
        case let .forwardingStragglers(host, _): "forwarding-stragglers to \(host)"
        }
    }
}

/// A port as the switch reports it.
public struct PortStatus: Hashable, Sendable {
    /// The configuration.
    public var configuration: PortConfiguration
    /// The segment the port's network maps to on this host.
    public var segment: SegmentID
    /// Its lifecycle state.
    public var lifecycle: PortLifecycle
    /// Its counters (imported baseline included).
    public var counters: PortCounters
    /// Exact addresses learned from the VM's traffic.
    public var learnedIPs: [IPAddress]
    /// Number of tracked connections.
    public var connections: Int
}
