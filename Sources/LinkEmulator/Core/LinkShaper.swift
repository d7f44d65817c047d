/// One direction of an emulated link, as a pure state machine: arrivals in (size and time),
/// verdicts out (deliver at this instant, or drop and why). No clock, no I/O: the shell passes
/// the time of every arrival and carries out the verdict (README, "Long distance").
///
/// Invariants: departures from the bottleneck are in arrival order and never closer together
/// than the rate allows once the bucket is empty; bytes waiting for tokens never exceed
/// `queueLimitBytes` (a datagram that would exceed it is dropped; a stream shell stops reading
/// while `acceptsStreamData` is false); deliveries are in arrival order.
public struct LinkShaper: Sendable {
    /// What becomes of one arrival.
    public enum Verdict: Sendable, Equatable {
        /// Hand it to the far side at this instant (nanoseconds on the shell's clock).
        case deliver(atNanoseconds: Int64)
        /// The datagram is gone.
        case drop(DropReason)
    }

    /// Why a datagram was dropped.
    public enum DropReason: Sendable, Equatable {
        /// Random loss (`lossRate`).
        case lost
        /// The bottleneck queue was full (drop-tail).
        case queueFull
    }

    /// What arrived: a datagram (may be dropped) or a chunk of a stream (never dropped).
    public enum Kind: Sendable, Equatable {
        case datagram
        case stream
    }

    /// The conditions this direction applies.
    public let profile: LinkProfile
    private var random: SplitMix64
    private var tokens: Double
    private var tokenTime: Int64 = .min
    private var lastDeparture: Int64 = .min
    private var lastDelivery: Int64 = .min
    /// Departure time and size of each arrival still waiting for tokens, oldest first.
    private var waiting: [(departure: Int64, size: Int)] = []
    private var waitingHead = 0
    /// Sum of the sizes in `waiting[waitingHead...]`.
    public private(set) var queuedBytes = 0
    /// Counters, for tests and reports.
    public private(set) var delivered = 0
    public private(set) var droppedLost = 0
    public private(set) var droppedQueueFull = 0
    public private(set) var retransmitted = 0

    /// A direction with a full token bucket and an empty queue.
    public init(profile: LinkProfile) {
        self.profile = profile
        random = SplitMix64(seed: profile.seed)
        tokens = Double(profile.burstBytes)
    }

    /// Bytes per nanosecond of the bottleneck (nil: unlimited).
    private var bytesPerNanosecond: Double? {
        profile.rateBitsPerSecond.map { Double($0) / 8e9 }
    }

    /// `size` bytes arrived at `now`.
    public mutating func arrive(size: Int, kind: Kind, now: Int64) -> Verdict {
        releaseDeparted(now: now)
        if kind == .datagram {
            if profile.lossRate > 0, random.nextUnitInterval() < profile.lossRate {
                droppedLost += 1
                return .drop(.lost)
            }
            if profile.rateBitsPerSecond != nil, queuedBytes + size > profile.queueLimitBytes {
                droppedQueueFull += 1
                return .drop(.queueFull)
            }
        }
        let departure = depart(size: size, now: now)
        if departure > now {
            waiting.append((departure, size))
            queuedBytes += size
        }
        var arrival = departure + profile.oneWayDelay.linkNanoseconds
        let jitter = profile.jitter.linkNanoseconds
        if jitter > 0 { arrival += Int64(random.next() % UInt64(jitter)) }
        if kind == .stream, profile.lossRate > 0, random.nextUnitInterval() < profile.lossRate {
            // TCP retransmits the segment: it arrives one round trip later than it would have.
            arrival += 2 * profile.oneWayDelay.linkNanoseconds
            retransmitted += 1
        }
        arrival = max(arrival, lastDelivery)
        lastDelivery = arrival
        delivered += 1
        return .deliver(atNanoseconds: arrival)
    }

    /// Whether a stream may hand over more data at `now` (its queue is below the limit).
    public mutating func acceptsStreamData(now: Int64) -> Bool {
        releaseDeparted(now: now)
        return queuedBytes < profile.queueLimitBytes
    }

    /// When the oldest waiting arrival leaves the queue (nil: the queue is empty): the time a
    /// paused stream should look again.
    public var nextDeparture: Int64? {
        waitingHead < waiting.count ? waiting[waitingHead].departure : nil
    }

    /// The token bucket: when an arrival of `size` bytes at `now` leaves the bottleneck.
    private mutating func depart(size: Int, now: Int64) -> Int64 {
        guard let rate = bytesPerNanosecond else { return now }
        let start = max(now, lastDeparture)
        if tokenTime != .min {
            tokens = min(Double(profile.burstBytes), tokens + Double(start - tokenTime) * rate)
        }
        let departure: Int64
        if tokens >= Double(size) {
            tokens -= Double(size)
            departure = start
        } else {
            departure = start + Int64(((Double(size) - tokens) / rate).rounded(.up))
            tokens = 0
        }
        tokenTime = departure
        lastDeparture = departure
        return departure
    }

    private mutating func releaseDeparted(now: Int64) {
        while waitingHead < waiting.count, waiting[waitingHead].departure <= now {
            queuedBytes -= waiting[waitingHead].size
            waitingHead += 1
        }
        if waitingHead > 1024, waitingHead * 2 > waiting.count {
            waiting.removeFirst(waitingHead)
            waitingHead = 0
        }
    }
}

extension Duration {
    /// Whole nanoseconds (the emulator's clock unit).
    var linkNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
