/// Everything a port is, as it moves with its VM: the source exports it during pre-copy so the
/// destination can create the port fully configured but blocked (Protocol.md §8.4).
///
/// Instants never leave a host: connection and learned-address ages are exported as
/// milliseconds of idleness at export time.
public struct PortStateRecord: Hashable, Sendable {
    /// Record format version written by this implementation.
    public static let formatVersion: UInt32 = 1

    /// The port's configuration (id, network name, MAC, allowed addresses, policy).
    public var configuration: PortConfiguration
    /// The segment on the exporting host (informative: the importer maps the network by name).
    public var segment: SegmentID
    /// Counters at export.
    public var counters: PortCounters
    /// Learned addresses and their idleness.
    public var learned: [LearnedAddress]
    /// Every tracked connection.
    public var connections: [TrackedConnection]
    /// The connection-tracking generation this snapshot is complete up to (the first delta's base).
    public var generation: UInt64
    /// The highest mobility sequence number the exporter knows for the MAC on the segment.
    public var mobilitySequence: UInt64

    /// A record.
    public init(configuration: PortConfiguration, segment: SegmentID, counters: PortCounters, learned: [LearnedAddress],
                connections: [TrackedConnection], generation: UInt64, mobilitySequence: UInt64) {
        self.configuration = configuration
        self.segment = segment
        self.counters = counters
        self.learned = learned
        self.connections = connections
        self.generation = generation
        self.mobilitySequence = mobilitySequence
    }
}

/// What changed in a port since an earlier export: sent repeatedly during pre-copy and a last
/// time (`isFinal`) when the source freezes the port at switchover.
public struct PortStateDelta: Hashable, Sendable {
    /// The port.
    public var port: PortID
    /// The generation of the export this delta follows.
    public var fromGeneration: UInt64
    /// The generation this delta is complete up to (the next delta's base).
    public var toGeneration: UInt64
    /// `upserts` is the whole connection table: replace instead of merging.
    public var fullResync: Bool
    /// Counters now (absolute).
    public var counters: PortCounters
    /// The whole learned set now.
    public var learned: [LearnedAddress]
    /// Connections created or changed since `fromGeneration`.
    public var upserts: [TrackedConnection]
    /// Connections gone since `fromGeneration`.
    public var removals: [ConnectionKey]
    /// The source port is frozen: this is the last delta.
    public var isFinal: Bool
    /// The highest mobility sequence number the exporter knows for the MAC.
    public var mobilitySequence: UInt64

    /// A delta.
    public init(port: PortID, fromGeneration: UInt64, toGeneration: UInt64, fullResync: Bool, counters: PortCounters,
                learned: [LearnedAddress], upserts: [TrackedConnection], removals: [ConnectionKey], isFinal: Bool,
                mobilitySequence: UInt64) {
        self.port = port
        self.fromGeneration = fromGeneration
        self.toGeneration = toGeneration
        self.fullResync = fullResync
        self.counters = counters
        self.learned = learned
        self.upserts = upserts
        self.removals = removals
        self.isFinal = isFinal
        self.mobilitySequence = mobilitySequence
    }
}

/// An address the switch learned from a VM's traffic.
public struct LearnedAddress: Hashable, Sendable {
    /// The address.
    public var ip: IPAddress
    /// Milliseconds since the VM last used it, at export.
    public var idleMilliseconds: UInt64

    /// A learned address.
    public init(ip: IPAddress, idleMilliseconds: UInt64) {
        self.ip = ip
        self.idleMilliseconds = idleMilliseconds
    }
}
