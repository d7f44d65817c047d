/// One entry of the mesh-wide MAC location table, as it travels between hosts: "MAC `mac` on
/// segment `segment` is behind `host`", with EVPN's mobility sequence number (RFC 7432 §15).
public struct MACLocation: Hashable, Sendable, CustomStringConvertible {
    /// The VM's MAC.
    public var mac: MACAddress
    /// The segment the MAC is on.
    public var segment: SegmentID
    /// The host whose switch has the port.
    public var host: HostID
    /// Mobility sequence number: raised by one each time the MAC moves. Highest wins.
    public var sequence: UInt64
    /// Addresses bound to the MAC (for proxy ARP at every host).
    public var ips: [IPAddress]
    /// `host` no longer has the MAC (the port was removed without moving).
    public var withdrawn: Bool

    /// A location.
    public init(mac: MACAddress, segment: SegmentID, host: HostID, sequence: UInt64, ips: [IPAddress] = [], withdrawn: Bool = false) {
        self.mac = mac
        self.segment = segment
        self.host = host
        self.sequence = sequence
        self.ips = ips
        self.withdrawn = withdrawn
    }

    /// `52:54:00:00:00:02@100 -> host-a #3`.
    public var description: String {
        "\(mac)@\(segment) \(withdrawn ? "withdrawn by" : "->") \(host) #\(sequence)"
    }
}

/// Where a batch of location updates came from.
public enum LocationSource: Hashable, Sendable {
    /// Pushed directly by `host` over the overlay: only `host`'s own locations are accepted.
    case direct(HostID)
    /// Relayed by the agent's gossip (already authenticated by the membership layer).
    case gossip
}

/// The table's current belief about one MAC on one segment.
public struct LocationEntry: Hashable, Sendable {
    /// Where the MAC is.
    public var location: MACLocation
    /// True when two hosts claimed the MAC with the same sequence number.
    public var duplicate: Bool
    /// True when duplicate detection froze the MAC (too many moves): updates are ignored
    /// until an operator clears it.
    public var frozen: Bool
}
