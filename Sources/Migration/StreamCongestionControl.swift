import Logging
import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The congestion control a migration stream's sending socket uses at distance (Protocol.md
/// §6.11): BBR where the kernel lets this process choose it, else the system's. Measured across
/// the frame link at 250 ms with CUBIC, the common default: HyStart ended slow start early on 9 of
/// 13 stripes (at 160-300 segments, no loss, on the delay of a queue the other stripes' bursts
/// built), which then grew by CUBIC's curve for the rest of the transfer; the stream, joined in
/// order, moved at link use 0.72-0.80 with handovers of 1.1-1.6 s. BBR paces each stripe and
/// leaves slow start on measured bandwidth, not on a queue's first milliseconds.
enum StreamCongestionControl {
    /// The algorithm asked for.
    static let preferred = "bbr"

    /// Asks for `preferred` on `channel`'s socket; true when the kernel took it. A kernel without
    /// it, or one that lets only `net.ipv4.tcp_allowed_congestion_control` be chosen without
    /// CAP_NET_ADMIN, keeps the system's: the stream still works, only at distance it ramps as
    /// that algorithm does (logged once per process).
    static func prefer(_ channel: any Channel, logger: Logger) -> EventLoopFuture<Bool> {
        set(channel, algorithm: preferred).recover { error in
            if !refusalLogged.withLockedValue({ let logged = $0; $0 = true; return logged }) {
                logger.notice("migration streams at distance keep the system's congestion control: the kernel refused \(preferred)",
                              metadata: ["error": "\(error)",
                                         "mesh.fix": "load tcp_bbr (`modprobe tcp_bbr`) and add it to net.ipv4.tcp_allowed_congestion_control, or run the agent with CAP_NET_ADMIN"])
            }
            return false
        }
    }

    /// Sets `channel`'s congestion control to `algorithm` (`TCP_CONGESTION`); true when taken,
    /// false where there is no such option (not Linux, not a socket); fails when the kernel refuses.
    static func set(_ channel: any Channel, algorithm: String) -> EventLoopFuture<Bool> {
        #if os(Linux)
        if let provider = channel as? any SocketOptionProvider {
            // TCP_CA_NAME_MAX (16) bytes, NUL-terminated.
            var name: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)
                = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &name) { bytes in
                for (index, byte) in algorithm.utf8.prefix(15).enumerated() { bytes[index] = byte }
            }
            return provider.unsafeSetSocketOption(level: .init(IPPROTO_TCP), name: .init(TCP_CONGESTION), value: name).map { true }
        }
        #endif
        return channel.eventLoop.makeSucceededFuture(false)
    }

    /// Set once the refusal was logged.
    private static let refusalLogged = NIOLockedValueBox(false)
}
