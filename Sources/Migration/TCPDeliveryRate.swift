import NIOCore

/// The delivery rate Linux measures on a TCP connection (`tcpi_delivery_rate`, bytes per second,
/// since Linux 4.9): what the last acknowledged flight moved per unit of time, the estimate BBR
/// keeps its pacing on. It measures the path, where what QEMU wrote in its last 100 ms measures
/// only how fast buffers on the way took it.
enum TCPDeliveryRate {
    /// `channel`'s current delivery rate, bytes per second; 0 where it cannot be read (not TCP, or
    /// closed, or a kernel older than 4.9).
    static func read(_ channel: any Channel) -> EventLoopFuture<UInt64> {
        KernelTCPInfo.read(channel).map { $0?.deliveryRate ?? 0 }
    }
}
