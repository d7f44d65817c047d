/// Kernel socket buffers for a migration stream, sized by the round trip the stream's own TCP
/// connection measured while its secure channel was set up (Protocol.md §6.11).
///
/// A TCP sender can have at most one send buffer in flight per round trip, and a receiver can
/// advertise at most its receive buffer's window share, so either end's buffer caps a stream at
/// buffer ÷ RTT: 512 KiB holds a LAN's pipe full many times over but moves ~4 MB/s across 150 ms
/// (measured: link use 0.14 of 250 Mbit/s). Deep buffers on a LAN, though, are bytes that must
/// drain at switchover and that make QEMU overestimate the bandwidth, so a short round trip keeps
/// the shallow buffers. A long one wants, on both ends, twice the bandwidth-delay product at the
/// link's rate, or at `distanceRate` where it is not known: the kernel counts its own overhead (about half
/// of a buffer, `tcp_adv_win_scale`) against it. The sender's unsent bytes stay short whatever its
/// buffer (`notSentLowWater`), so a deep send buffer holds in-flight data, not the guest's tail.
///
/// Where the kernel's autotuning may grow a buffer that far (`net.ipv4.tcp_wmem` / `tcp_rmem`
/// maximum) it is left in charge; otherwise the buffer is set, above `net.core.wmem_max` /
/// `rmem_max` with SO_SNDBUFFORCE / SO_RCVBUFFORCE (CAP_NET_ADMIN). When neither reaches the
/// product the plan says so (`capped`) and the shell logs which sysctl to raise.
public enum StreamBufferSizing {
    /// The buffer of a stream whose round trip is short (a LAN), bytes.
    public static let shallowBytes = 512 << 10
    /// At or above this round trip a stream is sized for distance, microseconds.
    public static let distanceThresholdMicroseconds: UInt32 = 10_000
    /// The rate a distance stream's buffer is sized for when the link's is not known: 250 Mbit/s,
    /// in bytes per second, what one migration across a WAN is given (issue 13). Not more: a send
    /// buffer sized for a faster link than the real one lets a slow start or BBR's startup put
    /// several products in flight and overflow the bottleneck's queue (measured at 1 Gbit/s's on a
    /// 250 Mbit/s link: four products, thousands of segments lost, no faster), and a receive
    /// buffer forced that large holds what a slow destination has not read. A faster link is
    /// named with `linkMbit` (the source's buffers then follow it; autotuning serves the destination).
    public static let distanceRate = 31_250_000
    /// The longest round trip a buffer is sized for, microseconds: twice the 250 ms the product
    /// aims at. The round trip is the stream's own TCP measurement, which a peer can inflate by
    /// holding its ACKs back during the handshake; past this it is taken as this.
    public static let maxSizingRTTMicroseconds: UInt32 = 500_000
    /// The most kernel buffer one stream wants, bytes (128 MiB: twice the product of 1 Gbit/s at
    /// 500 ms). A forced receive buffer is memory a slow QEMU can leave full, so it is bounded
    /// whatever the rate and round trip claim.
    public static let maxWantedBytes = 128 << 20
    /// The unsent bytes a distance stream's sending socket may hold (`TCP_NOTSENT_LOWAT`): what a
    /// LAN stream's whole send buffer holds, so the tail left at switchover is no deeper at distance.
    public static let notSentLowWater = 512 << 10

    /// What one end's kernel allows a socket buffer to reach, in the kernel's own bytes (twice what
    /// SO_SNDBUF / SO_RCVBUF ask for, the kernel doubles the request for its overhead).
    public struct KernelLimits: Sendable, Equatable {
        /// The most autotuning grows the buffer to: `net.ipv4.tcp_wmem` or `tcp_rmem`'s third value.
        public var autotuneMax: Int
        /// The most SO_SNDBUF / SO_RCVBUF may ask for: `net.core.wmem_max` or `rmem_max`.
        public var requestMax: Int
        /// Whether SO_SNDBUFFORCE / SO_RCVBUFFORCE may pass `requestMax` (CAP_NET_ADMIN).
        public var mayForce: Bool

        public init(autotuneMax: Int, requestMax: Int, mayForce: Bool) {
            self.autotuneMax = autotuneMax
            self.requestMax = requestMax
            self.mayForce = mayForce
        }
    }

    /// What to set on one end of a stream.
    public enum Setting: Sendable, Equatable {
        /// SO_SNDBUF or SO_RCVBUF asking for this many bytes (the kernel stores twice that).
        case fixed(Int)
        /// SO_SNDBUFFORCE or SO_RCVBUFFORCE asking for this many bytes, past `requestMax`.
        case forced(Int)
        /// Leave the kernel's autotuning in charge.
        case autotuned
    }

    /// One end's buffer for one stream.
    public struct Plan: Sendable, Equatable {
        public var setting: Setting
        /// The kernel buffer the stream wants, bytes: twice the product at distance, 0 on a LAN.
        public var wantedBytes: Int
        /// The kernel buffer the setting gives at most, bytes.
        public var grantedBytes: Int
        /// The kernel's limits keep the buffer below what the stream wants.
        public var capped: Bool { grantedBytes < wantedBytes }

        public init(setting: Setting, wantedBytes: Int, grantedBytes: Int) {
            self.setting = setting
            self.wantedBytes = wantedBytes
            self.grantedBytes = grantedBytes
        }
    }

    /// The kernel buffer a distance stream of round trip `rttMicroseconds` wants: twice the
    /// bandwidth-delay product at `rateBytesPerSecond` (the link's rate where the operator gave it,
    /// else `distanceRate`).
    /// Bounded by `maxSizingRTTMicroseconds` and `maxWantedBytes`.
    public static func wantedBytes(rttMicroseconds: UInt32, rateBytesPerSecond: Int = distanceRate) -> Int {
        let rtt = Double(min(rttMicroseconds, maxSizingRTTMicroseconds))
        return Int(min((2 * rtt * Double(max(0, rateBytesPerSecond)) / 1e6).rounded(), Double(maxWantedBytes)))
    }

    /// The buffer of one end (sending or receiving alike) of a stream of round trip
    /// `rttMicroseconds` (0: not measured, treated as short) under the kernel's `limits`. A stripe
    /// of a stream striped `share` ways (Protocol.md §6.14) wants 1/`share` of it (never less than
    /// a LAN stream holds), so that N stripes together hold one stream's bytes, not N.
    /// `rateBytesPerSecond`: the link's rate where known (the source's `linkMbit`); a send buffer of
    /// twice its product also caps what is in flight at the product plus a bottleneck queue of the
    /// same size, so a startup that overshoots fills the queue instead of overflowing it. That cap
    /// is why a sending end passes `autotune` false: its buffer is always set, never left to grow.
    /// A stripe's buffer is always set too, at either end: autotuning would let each of N stripes
    /// grow to the kernel's maximum, N streams' worth unread behind a busy destination.
    public static func plan(rttMicroseconds: UInt32, limits: KernelLimits, share: Int = 1, rateBytesPerSecond: Int? = nil,
                            autotune: Bool = true) -> Plan {
        guard rttMicroseconds >= distanceThresholdMicroseconds else {
            return Plan(setting: .fixed(shallowBytes), wantedBytes: 0, grantedBytes: 2 * shallowBytes)
        }
        let product = wantedBytes(rttMicroseconds: rttMicroseconds, rateBytesPerSecond: rateBytesPerSecond ?? distanceRate)
        let wanted = max(product / max(1, share), 2 * shallowBytes)
        let autotune = autotune && share <= 1
        if autotune, limits.autotuneMax >= wanted { return Plan(setting: .autotuned, wantedBytes: wanted, grantedBytes: limits.autotuneMax) }
        // Rounded up: the kernel doubles the request, and an odd `wanted` halved down came back one
        // byte short, which the report took for a capped buffer (a warning per stripe at distance).
        let request = (wanted + 1) / 2
        if request <= limits.requestMax { return Plan(setting: .fixed(request), wantedBytes: wanted, grantedBytes: wanted) }
        if limits.mayForce { return Plan(setting: .forced(request), wantedBytes: wanted, grantedBytes: wanted) }
        // Capped: the larger of what autotuning and a capped request reach (never shallower than a LAN).
        let capped = max(limits.requestMax, shallowBytes)
        if autotune, limits.autotuneMax >= 2 * capped { return Plan(setting: .autotuned, wantedBytes: wanted, grantedBytes: limits.autotuneMax) }
        return Plan(setting: .fixed(capped), wantedBytes: wanted, grantedBytes: 2 * capped)
    }
}
