/// Why the switch dropped a frame. Raw values appear in metrics, logs and the port state record.
public enum DropReason: String, Hashable, Sendable, CaseIterable, Codable {
    /// The frame's source MAC (Ethernet or ARP sender) is not the port's.
    case macSpoofed = "mac-spoofed"
    /// The frame's source IP (IPv4, IPv6 or ARP sender) is not one the port may use.
    case ipSpoofed = "ip-spoofed"
    /// An EtherType anti-spoofing does not pass (VLAN tags, LLDP, …).
    case etherTypeNotAllowed = "ethertype-not-allowed"
    /// Too short, too long, or an IP header that does not parse.
    case malformed
    /// A new connection from the VM that no egress rule allows.
    case egressPolicy = "egress-policy"
    /// A new connection towards the VM that no ingress rule allows.
    case ingressPolicy = "ingress-policy"
    /// The port is blocked (created for an incoming migration, not yet announced).
    case portBlocked = "port-blocked"
    /// The connection-tracking table is full.
    case conntrackFull = "conntrack-full"
    /// A TCP segment of no tracked connection that cannot open one (strict TCP pickup).
    case conntrackInvalid = "conntrack-invalid"
    /// The switch could not hand the frame to the VM's socket (QEMU not there).
    case guestUnreachable = "guest-unreachable"
    /// The VM did not read its socket fast enough and the port's backlog was full.
    case guestBusy = "guest-busy"
}

/// A port's counters. They never decrease, across migrations too: rx counts frames the switch
/// received from the VM (dropped ones included), tx counts frames it sent towards the VM
/// (`guest-unreachable` and `guest-busy` count those the VM's socket did not take).
public struct PortCounters: Hashable, Sendable {
    /// Frames received from the VM.
    public var rxFrames: UInt64 = 0
    /// Bytes received from the VM.
    public var rxBytes: UInt64 = 0
    /// Frames delivered to the VM.
    public var txFrames: UInt64 = 0
    /// Bytes delivered to the VM.
    public var txBytes: UInt64 = 0
    /// Dropped frames by reason (both directions).
    public var drops: [DropReason: UInt64] = [:]

    /// All zero.
    public init() {}

    /// Frames dropped for `reason`.
    public subscript(reason: DropReason) -> UInt64 { drops[reason, default: 0] }

    /// All dropped frames.
    public var totalDrops: UInt64 { drops.values.reduce(0, &+) }

    mutating func countReceived(_ bytes: Int) {
        rxFrames &+= 1
        rxBytes &+= UInt64(bytes)
    }

    mutating func countDelivered(_ bytes: Int) {
        txFrames &+= 1
        txBytes &+= UInt64(bytes)
    }

    mutating func countDrop(_ reason: DropReason) {
        drops[reason, default: 0] &+= 1
    }

    /// Field-wise sum (baseline imported from the source plus what this host counted).
    static func + (lhs: PortCounters, rhs: PortCounters) -> PortCounters {
        var sum = lhs
        sum.rxFrames &+= rhs.rxFrames
        sum.rxBytes &+= rhs.rxBytes
        sum.txFrames &+= rhs.txFrames
        sum.txBytes &+= rhs.txBytes
        for (reason, count) in rhs.drops { sum.drops[reason, default: 0] &+= count }
        return sum
    }

    /// Field-wise maximum: a newer import never lowers a counter.
    func fieldwiseMax(_ other: PortCounters) -> PortCounters {
        var result = self
        result.rxFrames = max(rxFrames, other.rxFrames)
        result.rxBytes = max(rxBytes, other.rxBytes)
        result.txFrames = max(txFrames, other.txFrames)
        result.txBytes = max(txBytes, other.txBytes)
        for (reason, count) in other.drops { result.drops[reason] = max(result.drops[reason, default: 0], count) }
        return result
    }
}

/// Switch-wide counters: frames that belong to no port.
public struct SwitchCounters: Hashable, Sendable {
    /// Frames received from peers over the overlay and accepted.
    public var overlayFramesIn: UInt64 = 0
    /// Frames sent to peers over the overlay.
    public var overlayFramesOut: UInt64 = 0
    /// Frames forwarded to a VM's new host by a port in straggler-forwarding state.
    public var stragglersForwarded: UInt64 = 0
    /// Overlay frames for a segment this host does not have.
    public var unknownSegment: UInt64 = 0
    /// Overlay unicast frames for a MAC that has no port here.
    public var noLocalDestination: UInt64 = 0
    /// Frames for a port that is blocked or frozen (counted here, not on the port, so the
    /// frozen port's counters stay final).
    public var toInactivePort: UInt64 = 0
    /// Frames that arrived from a port socket the switch no longer knows.
    public var unknownPort: UInt64 = 0
    /// Frames held for a paused, frozen or blocked port (§8.6.1).
    public var heldFramesQueued: UInt64 = 0
    /// Held frames delivered to their VM here, once it could take them.
    public var heldFramesDelivered: UInt64 = 0
    /// Held frames sent on to the VM's new host (with the forwarded flag).
    public var heldFramesForwarded: UInt64 = 0
    /// Frames not held or no longer held: past the byte bound, older than the age bound, or
    /// their port removed.
    public var heldFramesDropped: UInt64 = 0
    /// Copies of frames handed to a VM's socket after QEMU stopped the guest, put in front of
    /// the held ones at the freeze (§8.6.1; counted in `heldFramesQueued` too).
    public var heldFramesCopied: UInt64 = 0
    /// Of those, frames handed over before the STOP that QEMU's socket still held (§8.6.1).
    public var heldFramesCopiedUnread: UInt64 = 0
    /// Frames any port dropped (both directions, every port this switch had), by reason: what
    /// the ports' own counters say, kept when a port goes away.
    public var portDrops: [DropReason: UInt64] = [:]
    /// Unicast frames a stretched link's gateway relayed between its domain and the link
    /// (§8.9), in either direction.
    public var gatewayRelayed: UInt64 = 0
    /// Location updates refused: a sequence number above 2^62, or a link peer's claim of a MAC
    /// this domain places at one of its own hosts (§8.4, §8.9).
    public var locationsRefused: UInt64 = 0

    /// All zero.
    public init() {}

    mutating func countPortDrop(_ reason: DropReason) {
        portDrops[reason, default: 0] &+= 1
    }

    /// Every counter by a stable name (`held-frames-queued`, `port-drops.guest-busy`, …), for
    /// the control API's `switch.counters`.
    public var named: [String: UInt64] {
        var named: [String: UInt64] = [
            "overlay-frames-in": overlayFramesIn, "overlay-frames-out": overlayFramesOut,
            "stragglers-forwarded": stragglersForwarded, "unknown-segment": unknownSegment,
            "no-local-destination": noLocalDestination, "to-inactive-port": toInactivePort,
            "unknown-port": unknownPort, "held-frames-queued": heldFramesQueued,
            "held-frames-delivered": heldFramesDelivered, "held-frames-forwarded": heldFramesForwarded,
            "held-frames-dropped": heldFramesDropped, "held-frames-copied": heldFramesCopied,
            "held-frames-copied-unread": heldFramesCopiedUnread,
            "gateway-relayed": gatewayRelayed, "locations-refused": locationsRefused,
        ]
        for reason in DropReason.allCases { named["port-drops." + reason.rawValue] = portDrops[reason, default: 0] }
        return named
    }
}
