/// Kernel socket buffers for a migration stream, sized by the round trip the stream's own TCP
/// connection measured while its secure channel was set up (Protocol.md §6.11).
///
/// A TCP sender can have at most one send buffer in flight per round trip, so a fixed buffer caps
/// a stream at buffer ÷ RTT: 512 KiB holds a LAN's pipe full many times over but moves ~4 MB/s
/// across 150 ms (measured: link use 0.14 of 250 Mbit/s). Deep buffers on a LAN, though, are
/// bytes that must drain at switchover and that make QEMU overestimate the bandwidth, so a short
/// round trip keeps the shallow buffers, and only a long one gets a buffer of its
/// bandwidth-delay product: at `distanceRate` (the fastest link we size for) times the RTT,
/// within what the kernel allows (`net.core.wmem_max`; raise it for long fat links). The
/// receiving side then leaves its buffer to the kernel's autotuning, which grows the window
/// toward the measured product (up to `net.ipv4.tcp_rmem`'s maximum) rather than fixing it.
public enum StreamBufferSizing {
    /// The buffer of a stream whose round trip is short (a LAN), bytes.
    public static let shallowBytes = 512 << 10
    /// At or above this round trip a stream is sized for distance, microseconds.
    public static let distanceThresholdMicroseconds: UInt32 = 10_000
    /// The rate a distance stream's buffer is sized for: 1 Gbit/s, in bytes per second.
    public static let distanceRate = 125_000_000

    /// What to set on one end of a stream.
    public enum Setting: Sendable, Equatable {
        /// SO_SNDBUF or SO_RCVBUF of this many bytes.
        case fixed(Int)
        /// Leave the kernel's autotuning in charge.
        case autotuned
    }

    /// The send buffer for a stream of round trip `rttMicroseconds` (0: not measured, treated as
    /// short), with the kernel's cap on SO_SNDBUF `kernelCap`.
    public static func sendBuffer(rttMicroseconds: UInt32, kernelCap: Int) -> Setting {
        guard rttMicroseconds >= distanceThresholdMicroseconds else { return .fixed(shallowBytes) }
        let product = Int(rttMicroseconds) * (distanceRate / 1_000_000)
        return .fixed(max(shallowBytes, min(product, kernelCap)))
    }

    /// The receive buffer for a stream of round trip `rttMicroseconds`.
    public static func receiveBuffer(rttMicroseconds: UInt32) -> Setting {
        rttMicroseconds >= distanceThresholdMicroseconds ? .autotuned : .fixed(shallowBytes)
    }
}
