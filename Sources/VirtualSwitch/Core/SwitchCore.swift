public import MeshTime
import NIOCore

/// The virtual switch of one host as a pure state machine (Protocol.md §8).
///
/// A value type with no I/O and no clock: the shell (`VirtualSwitch`) feeds it events (a
/// frame from a VM, a frame or location updates from a peer, a periodic tick, an operator or
/// migration command), each with the current time, and carries out the `SwitchDirective`s it
/// returns, in order.
///
/// Driving it:
/// 1. `addNetwork(_:)`, then `createPort(_:lifecycle:now:)` for each VM NIC.
/// 2. Every frame from a VM: `onFrameFromPort(_:frame:now:)`; from the overlay:
///    `onFrameFromOverlay(from:segment:frame:forwarded:now:)`.
/// 3. Location updates pushed by a peer or relayed by gossip: `onLocations(_:from:now:)`.
/// 4. Periodically (every 100 ms or so): `onTick(now:)`.
/// 5. Migration, source: `exportPortState`, `exportPortDelta`, `freezePort`,
///    `forwardStragglers` (or `unfreezePort` to roll back). Destination: `importPort` (blocked),
///    `applyPortDelta`; the VM's announcement activates the port (or `activatePort`).
public struct SwitchCore: Sendable {
    /// This host.
    public let localHost: HostID
    /// Tunables.
    public let settings: SwitchSettings
    /// Switch-wide counters.
    public internal(set) var counters = SwitchCounters()

    var networks: [String: Network] = [:]
    var networkBySegment: [SegmentID: String] = [:]
    var ports: [PortID: Port] = [:]
    var portsByMAC: [LocationTable.Key: PortID] = [:]
    /// Ports per segment, sorted (flooding order is deterministic).
    var portsBySegment: [SegmentID: [PortID]] = [:]
    var locations: LocationTable
    /// Hosts of other domains this host links stretched segments to (§8.9), each with the
    /// segments (this host's ids) the link carries: this host is their gateway to its domain.
    var links: [HostID: Set<SegmentID>] = [:]
    /// The highest mobility sequence number accepted from a peer (§8.4): a claim above it is
    /// refused, so that claiming one above the highest known never overflows.
    static let maxSequence: UInt64 = 1 << 62
    var output: [SwitchDirective] = []
    let allocator = ByteBufferAllocator()

    /// A switch for `localHost` with no networks and no ports.
    public init(localHost: HostID, settings: SwitchSettings = SwitchSettings()) {
        self.localHost = localHost
        self.settings = settings
        locations = LocationTable(localHost: localHost, maxMoves: settings.duplicateDetectionMoves,
                                  window: settings.duplicateDetectionWindow)
    }

    // MARK: networks

    /// Adds a network. Adding the same network again is a no-op.
    public mutating func addNetwork(_ network: Network) throws(SwitchError) {
        guard network.segment.isValid else { throw .invalidSegment(network.segment) }
        if let existing = networks[network.name] {
            guard existing == network else { throw .networkExists(name: existing.name, segment: existing.segment) }
            return
        }
        if let other = networkBySegment[network.segment] { throw .segmentInUse(network.segment, network: other) }
        networks[network.name] = network
        networkBySegment[network.segment] = network.name
    }

    /// Removes a network that has no ports.
    public mutating func removeNetwork(named name: String) throws(SwitchError) {
        guard let network = networks[name] else { throw .unknownNetwork(name) }
        let remaining = portsBySegment[network.segment] ?? []
        guard remaining.isEmpty else { throw .networkInUse(name, ports: remaining) }
        networks[name] = nil
        networkBySegment[network.segment] = nil
    }

    /// The networks, sorted by name.
    public var allNetworks: [Network] { networks.values.sorted { $0.name < $1.name } }

    // MARK: queries

    /// A port's configuration, state and counters.
    public func status(of id: PortID) -> PortStatus? {
        guard let port = ports[id] else { return nil }
        return PortStatus(configuration: port.configuration, segment: port.segment, lifecycle: port.lifecycle,
                          counters: port.counters, learnedIPs: port.learned.keys.sorted(), connections: port.conntrack.count)
    }

    /// A port's counters.
    public func counters(of id: PortID) -> PortCounters? { ports[id]?.counters }

    /// All port ids, sorted.
    public var portIDs: [PortID] { ports.keys.sorted() }

    /// The location table, sorted by segment then MAC.
    public var locationEntries: [LocationEntry] { locations.entries }

    /// The table's entry for a MAC.
    public func location(of mac: MACAddress, segment: SegmentID) -> LocationEntry? {
        locations.entry(mac: mac, segment: segment)
    }

    /// Remote hosts that receive this segment's broadcasts (they have a MAC on it).
    public func floodHosts(segment: SegmentID) -> [HostID] { locations.floodHosts(segment: segment) }

    /// A tracked connection of a port, as it would be exported now.
    public func connection(_ key: ConnectionKey, port: PortID, now: MeshInstant) -> TrackedConnection? {
        ports[port]?.conntrack.connection(key, now: now)
    }

    // MARK: helpers shared by the extensions

    mutating func takeOutput() -> [SwitchDirective] {
        defer { output = [] }
        return output
    }

    func port(_ id: PortID) throws(SwitchError) -> Port {
        guard let port = ports[id] else { throw .unknownPort(id) }
        return port
    }
}
