import Foundation
import Logging
import NIOCore

/// Applies `StreamBufferSizing` to a migration stream's TCP connection once its secure channel is
/// up (its handshake gave the kernel round-trip samples).
enum StreamBuffers {
    /// This network namespace's limits on send buffers (`net.ipv4.tcp_wmem`, `net.core.wmem_max`).
    static let sendLimits = limits(autotune: "/proc/sys/net/ipv4/tcp_wmem", request: "/proc/sys/net/core/wmem_max")
    /// This network namespace's limits on receive buffers (`net.ipv4.tcp_rmem`, `net.core.rmem_max`).
    static let receiveLimits = limits(autotune: "/proc/sys/net/ipv4/tcp_rmem", request: "/proc/sys/net/core/rmem_max")

    /// Read once per process (procfs, no disk): a sysctl raised later takes effect at the agent's next start.
    private static func limits(autotune: String, request: String) -> StreamBufferSizing.KernelLimits {
        // Unreadable (another kernel, a sandbox): the common defaults of recent distributions.
        let autotuneText = (try? String(contentsOfFile: autotune, encoding: .utf8)) ?? ""
        // Unreadable: as above.
        let requestText = (try? String(contentsOfFile: request, encoding: .utf8)) ?? ""
        let autotuneMax = autotuneText.split(whereSeparator: \.isWhitespace).last.flatMap { Int($0) } ?? 4 << 20
        let requestMax = Int(requestText.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 208_896
        return StreamBufferSizing.KernelLimits(autotuneMax: autotuneMax, requestMax: requestMax, mayForce: hasNetAdmin)
    }

    /// Whether this process holds CAP_NET_ADMIN (bit 12 of `CapEff` in /proc/self/status), which
    /// SO_SNDBUFFORCE and SO_RCVBUFFORCE need.
    static let hasNetAdmin: Bool = {
        // Unreadable: assume not; a forced buffer would fail and fall back to the capped one anyway.
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
              let mask = UInt64(line.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << 12) != 0
    }()

    /// Linux's SO_SNDBUFFORCE, SO_RCVBUFFORCE and TCP_NOTSENT_LOWAT (asm-generic/socket.h, netinet/tcp.h).
    private static let sendForce = ChannelOptions.Types.SocketOption(level: .socket, name: .init(rawValue: 32))
    private static let receiveForce = ChannelOptions.Types.SocketOption(level: .socket, name: .init(rawValue: 33))
    private static let notSentLowAt = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 25))
    /// Linux's TCP_WINDOW_CLAMP (netinet/tcp.h).
    private static let windowClamp = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: 10))

    static let logger = Logger(label: "hostmesh.migration.stream")

    /// Keeps the bytes `channel`'s kernel holds unsent to `bytes` (`TCP_NOTSENT_LOWAT`): a write
    /// waits until fewer are queued. Succeeds where the kernel has no such option (it keeps its default).
    static func keepUnsent(_ channel: any Channel, below bytes: Int) -> EventLoopFuture<Void> {
        #if os(Linux)
        return channel.setOption(notSentLowAt, value: SocketOptionValue(clamping: bytes)).recover { _ in }
        #else
        return channel.eventLoop.makeSucceededVoidFuture()
        #endif
    }

    /// Reads the round trip of `channel`'s TCP connection and sizes its send (`sending`) or receive
    /// buffer. A sending socket's unsent bytes are kept to `notSentLowWater` whatever the round trip
    /// (a stripe), or, when it is nil, to `StreamBufferSizing.notSentLowWater` at distance only. The
    /// future gives the round trip in microseconds (0 when it could not be read, and then the
    /// shallow LAN buffer is set, as before).
    /// A stripe of a stream striped `share` ways gets 1/`share` of the stream's buffer;
    /// `rateBytesPerSecond` is the link's rate where the operator gave it (`linkMbit`).
    /// `congestionControl`: what a sending socket uses at distance (a receiving one ignores it).
    static func size(_ channel: any Channel, sending: Bool, notSentLowWater: Int? = nil, share: Int = 1,
                     rateBytesPerSecond: Int? = nil, congestionControl: StreamCongestionControl.Choice) -> EventLoopFuture<UInt32> {
        TCPRoundTrip.read(channel).flatMap { microseconds in
            apply(channel, rttMicroseconds: microseconds, sending: sending, notSentLowWater: notSentLowWater, share: share,
                  rateBytesPerSecond: rateBytesPerSecond, congestionControl: congestionControl)
        }
    }

    /// Sizes `channel`'s buffer for a round trip of `microseconds`, as `size` does once it measured it.
    static func apply(_ channel: any Channel, rttMicroseconds microseconds: UInt32, sending: Bool, notSentLowWater: Int? = nil,
                      share: Int = 1, rateBytesPerSecond: Int? = nil, congestionControl: StreamCongestionControl.Choice) -> EventLoopFuture<UInt32> {
        let limits = sending ? sendLimits : receiveLimits
        let plan = StreamBufferSizing.plan(rttMicroseconds: microseconds, limits: limits, share: share, rateBytesPerSecond: rateBytesPerSecond,
                                              autotune: !sending)
        let plain = ChannelOptions.socketOption(sending ? .so_sndbuf : .so_rcvbuf)
        var set: EventLoopFuture<Void>
        switch plan.setting {
        case .autotuned:
            set = channel.eventLoop.makeSucceededVoidFuture()
        case .fixed(let bytes):
            set = channel.setOption(plain, value: SocketOptionValue(clamping: bytes))
        case .forced(let bytes):
            // Refused (no CAP_NET_ADMIN after all): the most a plain request may ask, and the log below says so.
            set = channel.setOption(sending ? sendForce : receiveForce, value: SocketOptionValue(clamping: bytes))
                .flatMapError { _ in channel.setOption(plain, value: SocketOptionValue(clamping: limits.requestMax)) }
        }
        var lowWater = channel.eventLoop.makeSucceededVoidFuture()
        #if os(Linux)
        let atDistance = microseconds >= StreamBufferSizing.distanceThresholdMicroseconds
        if !sending, plan.setting != .autotuned {
            // A receive buffer set on an established connection does not move its window clamp,
            // which the handshake derived from the default buffer (tcp_rmem's middle value;
            // measured: 87 KB across the lab's link, 64 KiB on loopback) and only autotuning raises.
            // Set before autotuning ran, the window would stay there, capping the stream at 87 KB
            // per round trip: 0.6 MB/s at 150 ms (measured on stripes, some of which were left at it
            // while the others ran ahead, and the in-order join then held the whole stream to the
            // slow ones), and 24 MB/s at 2 ms, a LAN stream's fixed 512 KiB buffer notwithstanding
            // (bench migrate across a 2 ms, 1 Gbit/s link: 3x QEMU's direct time). The clamp
            // follows the buffer, at any round trip.
            set = set.flatMap {
                channel.setOption(windowClamp, value: SocketOptionValue(clamping: plan.grantedBytes)).recover { error in
                    // The buffer is set; only the window stays short, and the log says what it costs.
                    logger.warning("migration stream receive window left at the kernel's initial clamp: the stream is limited to about 87 KB per round trip",
                                   metadata: ["mesh.reason": "\(error)", "migration.rtt_us": "\(microseconds)"])
                }
            }
        }
        if sending {
            // A kernel without TCP_NOTSENT_LOWAT keeps its default: only the switchover's tail is longer.
            // On a LAN, 0: the system's default, in place of the padding's while it waited (§6.3).
            lowWater = keepUnsent(channel, below: notSentLowWater ?? (atDistance ? StreamBufferSizing.notSentLowWater : 0))
            // At distance, the host's congestion control (§6.11); a LAN keeps the system's.
            if atDistance { lowWater = lowWater.and(StreamCongestionControl.apply(congestionControl, to: channel, logger: logger)).map { _ in } }
        }
        #endif
        return set.and(lowWater).flatMap { _ in
            guard plan.wantedBytes > 0 else { return channel.eventLoop.makeSucceededFuture(microseconds) }
            // What the kernel holds now (autotuned: its current size; its ceiling is the plan's).
            return channel.getOption(plain).map { held in
                report(plan, held: Int(held), autotuned: plan.setting == .autotuned, sending: sending, rtt: microseconds, limits: limits)
                return microseconds
            }
        }
    }

    /// Logs a distance stream's buffer: at debug when it reaches twice the product, as a warning
    /// naming the sysctl to raise when the kernel keeps it below.
    private static func report(_ plan: StreamBufferSizing.Plan, held: Int, autotuned: Bool, sending: Bool, rtt: UInt32,
                               limits: StreamBufferSizing.KernelLimits) {
        let granted = autotuned ? plan.grantedBytes : held
        var metadata: Logger.Metadata = [
            "migration.stream.end": "\(sending ? "send" : "receive")", "migration.rtt_us": "\(rtt)",
            "migration.buffer.wanted": "\(plan.wantedBytes)", "migration.buffer.granted": "\(granted)",
            "migration.buffer.setting": "\(plan.setting)",
        ]
        guard granted < plan.wantedBytes else {
            logger.debug("migration stream buffer sized to the round trip", metadata: metadata)
            return
        }
        let (tcp, core) = sending ? ("net.ipv4.tcp_wmem", "net.core.wmem_max") : ("net.ipv4.tcp_rmem", "net.core.rmem_max")
        metadata["mesh.fix"] = "raise \(tcp)'s maximum to \(plan.wantedBytes) (or \(core) to \((plan.wantedBytes + 1) / 2), or run the agent with CAP_NET_ADMIN) and restart the agent"
        logger.warning("migration stream buffer below twice the bandwidth-delay product: the kernel caps it, so the stream cannot fill a fast link at this round trip",
                       metadata: metadata)
    }
}
