import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's `struct tcp_info` as raw words. Glibc's own `tcp_info`, which NIO reads, stops at
/// `tcpi_total_retrans` (byte 104); the kernel fills what fits of its longer, append-only layout
/// (`linux/tcp.h`) and leaves the rest zero (NIO zeroes the buffer first). Offsets below are
/// that layout's, read in the host's byte order as the kernel wrote them.
struct KernelTCPInfo: Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    /// `tcpi_rtt`, the smoothed round trip, microseconds: byte offset 68 (a __u32).
    var smoothedRoundTrip: UInt32 { field(at: 68) }

    /// `tcpi_min_rtt`, the least round trip the connection has sampled, microseconds: byte offset
    /// 148 (a __u32, since Linux 4.10). 0 on an older kernel; the kernel reports `UInt32.max`
    /// before the first sample.
    var minimumRoundTrip: UInt32 { field(at: 148) }

    /// `tcpi_delivery_rate`, bytes per second: byte offset 160 (a __u64, since Linux 4.9).
    var deliveryRate: UInt64 { field(at: 160) }

    /// The field of type `T` at byte `offset` of the kernel's layout.
    private func field<T: FixedWidthInteger>(at offset: Int) -> T {
        withUnsafeBytes(of: words) { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }

    /// `channel`'s `TCP_INFO`; nil where it cannot be read (not TCP, closed, not Linux).
    static func read(_ channel: any Channel) -> EventLoopFuture<KernelTCPInfo?> {
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider {
            let info: EventLoopFuture<KernelTCPInfo> = provider.unsafeGetSocketOption(level: .init(IPPROTO_TCP), name: .init(TCP_INFO))
            return info.map { Optional($0) }.recover { _ in nil }
        }
        #endif
        return channel.eventLoop.makeSucceededFuture(nil)
    }
}
