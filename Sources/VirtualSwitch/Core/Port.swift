import MeshTime
import NIOCore

/// A port inside the switch core: configuration, lifecycle, counters, learned addresses and
/// connection tracking. Everything the port state record carries lives here.
struct Port: Sendable {
    var configuration: PortConfiguration
    var segment: SegmentID
    var lifecycle: PortLifecycle
    /// A blocked port not activated by then is reported (`activationTimedOut`).
    var activationDeadline: MeshInstant?
    /// Counters imported from the VM's previous host (never lowered).
    var baseline = PortCounters()
    /// Counters counted on this host.
    var local = PortCounters()
    var conntrack: ConnectionTracker
    /// Exact addresses the VM used within its allowed prefixes, with when last seen.
    var learned: [IPAddress: MeshInstant] = [:]
    /// Highest mobility sequence number known from an imported record.
    var importedSequence: UInt64 = 0
    /// Generation the last export (bulk or delta) was complete up to: the default delta base.
    var exportedGeneration: UInt64?
    /// Generation the imported state is complete up to: the next delta must start here.
    var importedGeneration: UInt64?
    /// The MAC was claimed elsewhere with a higher sequence while this port was active.
    var lostLocation = false
    /// Frames for the VM it cannot take now (paused, frozen, blocked), in order (§8.6.1).
    var held = HeldFrames()
    /// Set while the VM is paused for a switchover: frames for it are held, not delivered. The
    /// pause ends by `resumePort`/`freezePort`, or by itself at this instant (a pause whose end
    /// nobody reported must not cut the VM off).
    var pausedUntil: MeshInstant?
    /// Frozen for a move to this host: frames for the VM go there at once (its blocked port
    /// holds them) instead of waiting here for `forwardStragglers` (§8.6.1).
    var frozenFor: HostID?
    /// Frozen for a move to this host, whether or not frames are held (a stretched link's peer
    /// may claim the VM's MAC only while it moves to it, §8.9).
    var movingTo: HostID?

    init(configuration: PortConfiguration, segment: SegmentID, lifecycle: PortLifecycle, settings: SwitchSettings) {
        self.configuration = configuration
        self.segment = segment
        self.lifecycle = lifecycle
        conntrack = ConnectionTracker(capacity: settings.conntrackCapacity, timeouts: settings.connectionTimeouts)
    }

    var counters: PortCounters { baseline + local }
    var mac: MACAddress { configuration.mac }
    var isActive: Bool { lifecycle == .active }

    /// Bound addresses: configured exact ones and learned ones, sorted.
    var boundIPs: [IPAddress] {
        Array(Set(configuration.boundIPs).union(learned.keys)).sorted()
    }

    /// Whether the VM may use `ip` as a source address.
    func mayUse(_ ip: IPAddress) -> Bool {
        configuration.allowedIPs.contains { $0.contains(ip) }
    }

    /// True when `frame` is the VM announcing itself: a RARP (QEMU's announce-self after a
    /// migration) or a gratuitous ARP from the port's MAC and one of its addresses.
    func isAnnouncement(_ frame: ByteBuffer, header: EthernetHeader) -> Bool {
        guard header.source == mac, header.etherType == EtherType.rarp || header.etherType == EtherType.arp,
              let arp = ARPPacket(frame: frame), arp.senderMAC == mac else { return false }
        if header.etherType == EtherType.rarp { return arp.operation == ARPPacket.reverseRequest }
        return arp.isGratuitous && mayUse(arp.senderIP)
    }

    /// What `admitFromVM` decided.
    enum EgressResult {
        case pass
        case drop(DropReason)
    }

    /// Anti-spoofing, learning and the egress firewall for a frame the VM sent. Returns
    /// whether a new address was learned (the location's addresses changed).
    mutating func admitFromVM(_ frame: ByteBuffer, header: EthernetHeader, now: MeshInstant) -> (EgressResult, learnedNew: Bool) {
        let policy = configuration.policy
        if policy.antiSpoofing, header.source != mac { return (.drop(.macSpoofed), false) }
        switch header.etherType {
        case EtherType.arp, EtherType.rarp:
            guard let arp = ARPPacket(frame: frame) else { return (.drop(.malformed), false) }
            if policy.antiSpoofing {
                guard arp.senderMAC == mac else { return (.drop(.macSpoofed), false) }
                // RARP carries no sender address; an ARP probe uses 0.0.0.0.
                if header.etherType == EtherType.arp, arp.senderIP != .unspecifiedV4, !mayUse(arp.senderIP) {
                    return (.drop(.ipSpoofed), false)
                }
            }
            let learnedNew = header.etherType == EtherType.arp && learn(arp.senderIP, now: now)
            return (.pass, learnedNew)
        case EtherType.ipv4, EtherType.ipv6:
            guard let packet = IPPacketInfo(frame: frame, etherType: header.etherType) else { return (.drop(.malformed), false) }
            if policy.antiSpoofing, !mayUse(packet.source), !isExempt(packet, policy: policy) { return (.drop(.ipSpoofed), false) }
            let learnedNew = learn(packet.source, now: now)
            switch conntrack.process(packet, direction: .egress, policy: policy, now: now) {
            case .allowed: return (.pass, learnedNew)
            case let .denied(reason): return (.drop(reason), learnedNew)
            }
        default:
            return policy.antiSpoofing ? (.drop(.etherTypeNotAllowed), false) : (.pass, false)
        }
    }

    /// The ingress firewall for a frame towards the VM.
    mutating func admitToVM(_ frame: ByteBuffer, header: EthernetHeader, now: MeshInstant) -> DropReason? {
        guard header.etherType == EtherType.ipv4 || header.etherType == EtherType.ipv6 else { return nil }
        guard let packet = IPPacketInfo(frame: frame, etherType: header.etherType) else { return .malformed }
        switch conntrack.process(packet, direction: .ingress, policy: configuration.policy, now: now) {
        case .allowed: return nil
        case let .denied(reason): return reason
        }
    }

    /// Source addresses allowed without being in `allowedIPs`.
    private func isExempt(_ packet: IPPacketInfo, policy: SecurityPolicy) -> Bool {
        if policy.allowDHCPClient, packet.source == .unspecifiedV4, packet.destination == .broadcastV4,
           packet.proto == IPProtocol.udp, packet.sourcePort == 68, packet.destinationPort == 67 {
            return true
        }
        if policy.allowIPv6LinkLocal {
            if packet.source == mac.ipv6LinkLocal { return true }
            if packet.source == .unspecifiedV6, packet.proto == IPProtocol.icmpv6 { return true }
        }
        return false
    }

    /// Records that the VM uses `ip`; true when it was not known.
    private mutating func learn(_ ip: IPAddress, now: MeshInstant) -> Bool {
        guard ip != .unspecifiedV4, ip != .unspecifiedV6, !ip.isMulticastOrBroadcast, mayUse(ip) else { return false }
        let isNew = learned.updateValue(now, forKey: ip) == nil
        return isNew && !configuration.boundIPs.contains(ip)
    }

    /// Forgets addresses unused for `idle`; true when any was forgotten.
    mutating func expireLearned(now: MeshInstant, idle: Duration) -> Bool {
        let before = learned.count
        learned = learned.filter { now - $0.value <= idle }
        return learned.count != before
    }
}
