/// How the overlay carries stretched segments to one host of another, federated domain
/// (Protocol.md §8.9). Host ids are unique within a domain only and segment ids are each
/// domain's own, so the pair names both ends `host@domain` (in the overlay header's tag and in
/// the keys, §8.3) and translates segment ids at the boundary; only the stretched segments cross,
/// and only MAC locations of the two ends' own domains, each named as its end's (the gateway's).
public struct StretchedLink: Hashable, Sendable {
    /// This host as the peer knows it (`host@domain`): its tag in headers and its name in keys.
    public var localName: HostID
    /// The peer's host id in its own domain: its locations name it so.
    public var peerOwnName: HostID
    /// Each stretched segment: this host's id → the peer's id for the same network.
    public var segments: [SegmentID: SegmentID]

    /// A link; `segments` maps this host's segment ids to the peer's.
    public init(localName: HostID, peerOwnName: HostID, segments: [SegmentID: SegmentID]) {
        self.localName = localName
        self.peerOwnName = peerOwnName
        self.segments = segments
    }

    /// The peer's id of one of this host's segments; nil when that segment is not stretched.
    public func outbound(_ segment: SegmentID) -> SegmentID? { segments[segment] }

    /// This host's id of one of the peer's segments; nil when it is not stretched.
    public func inbound(_ segment: SegmentID) -> SegmentID? { segments.first { $0.value == segment }?.key }

    /// Locations the peer sent (or a hello carried): only its own, on stretched segments, named
    /// `peer` (how this host knows it) and on this host's segments. Anything else is dropped.
    public func incoming(_ locations: [MACLocation], peer: HostID) -> [MACLocation] {
        locations.compactMap { location in
            guard location.host == peerOwnName, let segment = inbound(location.segment) else { return nil }
            var mapped = location
            mapped.host = peer
            mapped.segment = segment
            return mapped
        }
    }

    /// Locations for the peer: this host's own and, as its gateway, those of the hosts of its
    /// own domain (`isLinkPeer` false), on stretched segments, all named as this host's
    /// (`localHost`, its segment ids): the peer translates them (`incoming`), as it does the
    /// hello's, and sends frames for them here, where they are relayed (§8.9). Locations behind
    /// other links are never passed on.
    public func outgoing(_ locations: [MACLocation], localHost: HostID, isLinkPeer: (HostID) -> Bool) -> [MACLocation] {
        Self.asGateway(locations, localHost: localHost, on: { outbound($0) != nil }, isLinkPeer: isLinkPeer)
    }

    /// `locations` on the segments `on` accepts, this host's own and its domain's (not those
    /// behind a link), each named as `localHost`'s: what a gateway tells its link peers (§8.9).
    static func asGateway(_ locations: [MACLocation], localHost: HostID, on segment: (SegmentID) -> Bool,
                          isLinkPeer: (HostID) -> Bool) -> [MACLocation] {
        locations.compactMap { location in
            guard segment(location.segment), location.host == localHost || !isLinkPeer(location.host) else { return nil }
            var named = location
            named.host = localHost
            return named
        }
    }
}
