import Foundation
import NIOCore

/// Applies `StreamBufferSizing` to a migration stream's TCP connection once its secure channel is
/// up (its handshake gave the kernel round-trip samples).
enum StreamBuffers {
    /// The kernel's cap on SO_SNDBUF (`net.core.wmem_max`); 4 MiB when it cannot be read.
    static let sendCap: Int = {
        // Unreadable (another kernel, a sandbox): the common default of recent distributions.
        let text = (try? String(contentsOfFile: "/proc/sys/net/core/wmem_max", encoding: .utf8)) ?? ""
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 4 << 20
    }()

    /// Reads the round trip of `channel`'s TCP connection and sets its send (`sending`) or receive
    /// buffer; the future gives the round trip in microseconds (0 when it could not be read, and
    /// then the shallow LAN buffer is set, as before).
    static func size(_ channel: any Channel, sending: Bool) -> EventLoopFuture<UInt32> {
        let rtt: EventLoopFuture<UInt32>
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider {
            rtt = provider.getTCPInfo().map { $0.tcpi_rtt }.recover { _ in 0 }
        } else {
            rtt = channel.eventLoop.makeSucceededFuture(0)
        }
        #else
        rtt = channel.eventLoop.makeSucceededFuture(0)
        #endif
        return rtt.flatMap { microseconds in
            let setting = sending ? StreamBufferSizing.sendBuffer(rttMicroseconds: microseconds, kernelCap: sendCap)
                                  : StreamBufferSizing.receiveBuffer(rttMicroseconds: microseconds)
            guard case .fixed(let bytes) = setting else { return channel.eventLoop.makeSucceededFuture(microseconds) }
            let option = ChannelOptions.socketOption(sending ? .so_sndbuf : .so_rcvbuf)
            return channel.setOption(option, value: SocketOptionValue(clamping: bytes)).map { microseconds }
        }
    }
}
