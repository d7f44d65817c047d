import NIOCore

/// The round trip a TCP connection has measured, as stream sizing uses it (Protocol.md §6.11,
/// §6.14): the least it sampled (`tcpi_min_rtt`), the path's own delay, rather than the smoothed
/// figure (`tcpi_rtt`), which after a handshake's few samples still carries the first one's
/// scheduling delay on a busy host (read 160 ms and more across a 150 ms link, one stripe more
/// than the path calls for). The smoothed figure where the least is not known (a kernel before
/// 4.10, or no sample yet).
enum TCPRoundTrip {
    /// `channel`'s round trip, microseconds; 0 where it cannot be read.
    static func read(_ channel: any Channel) -> EventLoopFuture<UInt32> {
        KernelTCPInfo.read(channel).map { info in info.map(microseconds) ?? 0 }
    }

    /// The round trip `info` gives, microseconds.
    static func microseconds(_ info: KernelTCPInfo) -> UInt32 {
        let least = info.minimumRoundTrip
        return least > 0 && least < UInt32.max ? least : info.smoothedRoundTrip
    }
}
