/// The conditions of one direction of an emulated link (README, "Long distance"): what a packet or a
/// chunk of a TCP stream meets between the two sites.
///
/// The model is netem's: a token bucket at `rateBitsPerSecond` (depth `burstBytes`) in front of a
/// FIFO queue of at most `queueLimitBytes` (drop-tail for datagrams, back-pressure for streams),
/// then a propagation delay of `oneWayDelay` plus a uniform jitter in `0..<jitter`, and a loss
/// probability. Delivery keeps the order of arrival (jitter never reorders, as with netem's rate).
public struct LinkProfile: Sendable, Equatable, CustomStringConvertible {
    /// Propagation delay, one way. A link of round-trip time R has `oneWayDelay = R / 2`.
    public var oneWayDelay: Duration
    /// Extra delay per packet, uniform in `0..<jitter` (zero: none).
    public var jitter: Duration
    /// Bottleneck rate in bits per second; `nil`: unlimited (only the delay applies).
    public var rateBitsPerSecond: Int64?
    /// Depth of the token bucket: bytes that may leave back to back at line speed after an idle
    /// period. The default (one 64 KiB TSO burst) keeps short exchanges unthrottled, as a real
    /// NIC's burst does.
    public var burstBytes: Int
    /// The bottleneck queue: bytes waiting for tokens. A datagram that would exceed it is dropped
    /// (drop-tail); a stream stops being read while it is full.
    public var queueLimitBytes: Int
    /// Probability that a datagram is lost. On a stream a "lost" chunk is not dropped (TCP
    /// retransmits it): it arrives one round trip late, and everything behind it waits (head of
    /// line blocking), which is what a retransmission costs the application.
    public var lossRate: Double
    /// Seed of the jitter and loss draws (same seed, same sequence of arrivals: same fate).
    public var seed: UInt64

    /// A link of `rtt` round-trip time (split evenly between the two directions), `rateMbit`
    /// Mbit/s (nil: unlimited), no jitter, no loss; a queue of one bandwidth-delay product (at
    /// least 256 KiB), as a router sized by the rule of thumb has.
    public init(rtt: Duration, rateMbit: Double? = nil, jitter: Duration = .zero, lossRate: Double = 0, seed: UInt64 = 1) {
        oneWayDelay = rtt / 2
        self.jitter = jitter
        rateBitsPerSecond = rateMbit.map { Int64(($0 * 1_000_000).rounded()) }
        burstBytes = 64 * 1024
        self.lossRate = lossRate
        self.seed = seed
        let rttSeconds = Double(rtt.components.seconds) + Double(rtt.components.attoseconds) / 1e18
        let bdp = rateBitsPerSecond.map { Int(Double($0) / 8 * rttSeconds) } ?? 0
        queueLimitBytes = max(256 * 1024, bdp)
    }

    /// Checks the values a type cannot.
    public func validate() throws(LinkEmulatorError) {
        guard oneWayDelay >= .zero, oneWayDelay <= .seconds(10) else {
            throw .badProfile("one-way delay \(oneWayDelay) is outside 0...10 s")
        }
        guard jitter >= .zero, jitter <= .seconds(10) else { throw .badProfile("jitter \(jitter) is outside 0...10 s") }
        if let rate = rateBitsPerSecond, rate < 8_000 {
            throw .badProfile("rate \(rate) bit/s is below 8 kbit/s (leave it out for an unlimited link)")
        }
        guard burstBytes >= 1_500 else { throw .badProfile("burst of \(burstBytes) bytes is below one 1,500-byte packet") }
        guard queueLimitBytes >= 65_536 else {
            throw .badProfile("queue of \(queueLimitBytes) bytes is below 64 KiB: a TCP chunk or a large datagram would never fit")
        }
        guard (0...0.5).contains(lossRate) else { throw .badProfile("loss rate \(lossRate) is outside 0...0.5") }
    }

    public var description: String {
        let rate = rateBitsPerSecond.map { "\(Double($0) / 1e6) Mbit/s" } ?? "unlimited"
        return "one way \(oneWayDelay) (jitter \(jitter)), \(rate), queue \(queueLimitBytes) B, loss \(lossRate)"
    }
}

/// Why the emulator refused a profile or an address.
public enum LinkEmulatorError: Error, Equatable, CustomStringConvertible {
    /// A profile value is out of range; the text says which and what is allowed.
    case badProfile(String)
    /// A relay could not listen or reach its target.
    case relay(String)
    /// A tap device of a frame link could not be made or used.
    case device(String)

    public var description: String {
        switch self {
        case .badProfile(let reason): "link profile refused: \(reason); fix the value and start the link again"
        case .relay(let reason): "link relay failed: \(reason)"
        case .device(let reason): "link device failed: \(reason)"
        }
    }
}
