public import Membership
public import MeshTime

/// How the simulated network treats datagrams and push-pull exchanges.
public struct SimulatedNetwork: Sendable, Equatable {
    /// One-way latency every packet has at least.
    public var baseLatency: Duration = .milliseconds(1)
    /// Fixed extra one-way latency per link, drawn once per link from the seed in `0..<spread`
    /// (some pairs of hosts are farther apart than others).
    public var perLinkLatencySpread: Duration = .milliseconds(2)
    /// Extra latency per packet, uniform in `0..<jitter`, drawn from the seed.
    public var jitter: Duration = .milliseconds(1)
    /// Extra one-way delay between members of different sites (`Simulation.placeInSites`): half
    /// the round trip between two data centres. Zero: one site.
    public var interSiteDelay: Duration = .zero
    /// Probability that a datagram is lost (each datagram independently). Push-pull runs over
    /// TCP and is not subject to it.
    public var lossRate: Double = 0
    /// How long a push-pull initiator waits before reporting a failure to reach its peer.
    public var pushPullTimeout: Duration = .seconds(2)
    /// Bytes the shell's AEAD adds to every encoded datagram (24-byte XChaCha20 nonce +
    /// 16-byte Poly1305 tag); counted so that byte figures match the real wire.
    public var datagramCryptoOverhead: Int = 40

    /// A LAN: about 1-4 ms one way, no loss.
    public init() {}

    /// A network with the given loss rate and otherwise default conditions.
    public static func lossy(_ lossRate: Double) -> SimulatedNetwork {
        var network = SimulatedNetwork()
        network.lossRate = lossRate
        return network
    }
}

/// How faithfully the simulator treats datagrams on the wire.
public enum SimulatedWireFidelity: Sendable, Equatable {
    /// Count every datagram's exact encoded size with `GossipCodec` and deliver the value. The
    /// datagram's header and primary message are encoded each time; each piggybacked update's
    /// encoded size is computed by the codec once and cached (a repeated protobuf field is the
    /// concatenation of its entries, so the sum is exact; `roundTrip` gives identical counts).
    case encodeForSize
    /// Encode, then decode the bytes at the receiver and deliver the decoded value (slower;
    /// proves the codec carries everything the core needs).
    case roundTrip
}

/// Traffic of one simulated member.
public struct SimulatedTraffic: Sendable, Equatable {
    /// Datagrams handed to the network (including ones the network then loses).
    public var datagramsSent = 0
    /// Bytes of those datagrams as on the wire: encoded plaintext + crypto overhead.
    public var bytesSent = 0
    /// Datagrams delivered to the member.
    public var datagramsReceived = 0
    /// Bytes of the delivered datagrams.
    public var bytesReceived = 0
    /// Push-pull exchanges started.
    public var pushPullsStarted = 0
    /// Encoded push-pull state bytes sent (requests and replies), over the secure channel.
    public var pushPullBytesSent = 0
    /// Largest datagram sent, in bytes on the wire.
    public var largestDatagram = 0
    /// Claims this member dropped, by reason (signed membership, Protocol.md §4.16).
    public var claimsRejected: [ClaimRejection: Int] = [:]

    /// Zero traffic.
    public init() {}
}

/// A status change seen by one simulated member, with the virtual time it happened.
public struct SimulatedStatusChange: Sendable, Equatable {
    /// Virtual time of the change.
    public var time: MeshInstant
    /// Index of the member whose view changed.
    public var observer: Int
    /// Index of the member the change is about (`nil` if the id is not a simulated member).
    public var subject: Int?
    /// The change as the core reported it.
    public var change: MemberStatusChange
}

/// A datagram delivered to a simulated member.
public struct SimulatedDelivery: Sendable, Equatable {
    /// Virtual time of delivery.
    public var time: MeshInstant
    /// Index of the sender.
    public var from: Int
    /// Index of the receiver.
    public var to: Int
    /// The datagram.
    public var datagram: GossipDatagram
}
