public import MeshTime
import NIOCore

/// A stretched link's two ends relay unicast between their domains (Protocol.md §8.9,
/// "Gateway"): a host linked to a host of another domain passes frames from the hosts of its
/// own domain to the link and frames from the link to the hosts of its own domain, and tells the
/// link peer where its domain's MACs on the stretched segments are (as behind itself). It never
/// relays from the link to the link, nor between hosts of its own domain, nor a frame that a
/// host of its domain already forwarded: a frame crosses at most two gateways, so relaying
/// cannot loop.
extension SwitchCore {
    /// Starts (or updates) relaying for a link to `host`, a host of another domain (its name
    /// here, `host@domain`), carrying `segments` (this host's ids).
    public mutating func setLink(_ host: HostID, segments: Set<SegmentID>) {
        guard host != localHost else { return }
        links[host] = segments
    }

    /// Stops relaying for the link to `host` (it was removed or its grant ended).
    public mutating func removeLink(_ host: HostID) {
        links[host] = nil
    }

    /// Whether `host` is a host of another domain linked to this one.
    public func isLinkPeer(_ host: HostID) -> Bool { links[host] != nil }

    /// Whether a link peer may place `update`'s MAC behind itself: always for a MAC this domain
    /// does not place at one of its own hosts; for one it does, only while that MAC's port here is
    /// moving to that very peer (frozen for it, or forwarding its stragglers to it). A host of the
    /// other domain cannot take a MAC of this domain otherwise (§8.9).
    func linkMayClaim(_ update: MACLocation, sender: HostID) -> Bool {
        guard let entry = locations.entry(mac: update.mac, segment: update.segment), !isLinkPeer(entry.location.host) else { return true }
        guard let id = portsByMAC[LocationTable.Key(mac: update.mac, segment: update.segment)], let port = ports[id] else { return false }
        switch port.lifecycle {
        // A freeze that did not learn its destination (the guest's STOP raced it) is a move all
        // the same: for the milliseconds it lasts, any link peer's claim is taken.
        case .frozen: return port.movingTo == nil || port.movingTo == sender
        case let .forwardingStragglers(host, _): return host == sender
        case .active, .blocked: return false
        }
    }

    /// The host a unicast frame that arrived from the overlay (from `sender`, for a MAC with no
    /// port here) is relayed to, or nil when it is not relayed.
    func gatewayTarget(from sender: HostID, destination: MACAddress, segment: SegmentID, forwarded: Bool) -> HostID? {
        guard !links.isEmpty, let target = locations.entry(mac: destination, segment: segment)?.location.host,
              target != localHost, target != sender
        else { return nil }
        if isLinkPeer(sender) {
            // From the link into this domain: to a host of this domain only.
            return isLinkPeer(target) ? nil : target
        }
        // From this domain onto a link carrying the segment; never a frame already forwarded
        // once (by a gateway of this domain or a straggler port).
        guard !forwarded, links[target]?.contains(segment) == true else { return nil }
        return target
    }

    /// Location updates of this domain's hosts that a link peer should hear: accepted changes on
    /// a segment the link carries (the shell names them as this host's, §8.9).
    mutating func relayLocationsToLinks(_ updates: [MACLocation]) {
        guard !links.isEmpty else { return }
        for (peer, segments) in links.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let relayed = updates.filter { segments.contains($0.segment) && !isLinkPeer($0.host) }
            if !relayed.isEmpty { output.append(.sendLocations(relayed, to: [peer])) }
        }
    }
}
