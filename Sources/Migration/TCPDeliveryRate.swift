import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The delivery rate Linux measures on a TCP connection (`tcpi_delivery_rate`, bytes per second,
/// since Linux 4.9): what the last acknowledged flight moved per unit of time, the estimate BBR
/// keeps its pacing on. It measures the path, where what QEMU wrote in its last 100 ms measures
/// only how fast buffers on the way took it.
enum TCPDeliveryRate {
    /// The kernel's `struct tcp_info` as raw words. Glibc's own `tcp_info`, which NIO reads,
    /// stops at `tcpi_total_retrans` (byte 104); the kernel fills what fits of its longer,
    /// append-only layout and leaves the rest zero (NIO zeroes the buffer first).
    struct RawInfo: Sendable {
        var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
            = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

        /// `tcpi_delivery_rate`: byte offset 160 in `linux/tcp.h`'s layout (a __u64).
        var deliveryRate: UInt64 { words.20 }
    }

    /// `channel`'s current delivery rate, bytes per second; 0 where it cannot be read (not TCP, or
    /// closed, or a kernel older than 4.9).
    static func read(_ channel: any Channel) -> EventLoopFuture<UInt64> {
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider {
            let info: EventLoopFuture<RawInfo> = provider.unsafeGetSocketOption(level: .init(IPPROTO_TCP), name: .init(TCP_INFO))
            return info.map(\.deliveryRate).recover { _ in 0 }
        }
        #endif
        return channel.eventLoop.makeSucceededFuture(0)
    }
}
