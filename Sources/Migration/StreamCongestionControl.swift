public import Logging
import NIOConcurrencyHelpers
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The congestion control a migration stream's sending socket uses at distance (Protocol.md
/// §6.11): the host's choice, BBR by default, where the kernel lets this process set it, else
/// the system's. Measured across the frame link at 250 ms with CUBIC, the common default:
/// HyStart ended slow start early on 9 of 13 stripes (at 160-300 segments, no loss, on the delay
/// of a queue the other stripes' bursts built), which then grew by CUBIC's curve for the rest of
/// the transfer; the stream, joined in order, moved at link use 0.72-0.80 with handovers of
/// 1.1-1.6 s. BBR paces each stripe and leaves slow start on measured bandwidth, not on a
/// queue's first milliseconds.
public enum StreamCongestionControl {
    /// What a host's stream sockets use at distance: the agent's `stream_congestion_control`.
    public enum Choice: Sendable, Hashable, CustomStringConvertible {
        /// Whatever the system's default is (`net.ipv4.tcp_congestion_control`): nothing is set.
        case system
        /// This algorithm by name, as the kernel lists it (`net.ipv4.tcp_available_congestion_control`).
        case algorithm(String)

        /// BBR, measured against CUBIC above.
        public static let `default` = Choice.algorithm("bbr")

        /// `system`, or an algorithm's name: lower-case letters, digits and `_`, at most 15
        /// (the kernel's TCP_CA_NAME_MAX less its NUL); nil otherwise.
        public init?(parsing text: String) {
            if text == "system" { self = .system; return }
            guard (1...15).contains(text.utf8.count), text.utf8.first.map({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) }) == true,
                  text.utf8.allSatisfy({ (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "_") })
            else { return nil }
            self = .algorithm(text)
        }

        public var description: String {
            switch self {
            case .system: "system"
            case .algorithm(let name): name
            }
        }
    }

    /// The kernel's refusal of an algorithm (its errno says which remedy applies), or a check that
    /// could not be made at all (no socket to ask on).
    public struct Refusal: Sendable, Equatable, CustomStringConvertible {
        /// The algorithm refused.
        public var algorithm: String
        /// The kernel's errno: ENOENT (not loaded, and this process may not load it), EPERM (not
        /// in `net.ipv4.tcp_allowed_congestion_control`, and no CAP_NET_ADMIN), or another.
        public var errno: Int32
        /// True when no socket could be opened to ask (`errno` is `socket`'s): nothing was refused.
        public var unasked: Bool

        public init(algorithm: String, errno: Int32, unasked: Bool = false) {
            self.algorithm = algorithm
            self.errno = errno
            self.unasked = unasked
        }

        /// "bbr: No such file or directory".
        public var description: String {
            unasked ? "cannot open a TCP socket to ask about \(algorithm): \(String(cString: strerror(errno)))"
                : "\(algorithm): \(String(cString: strerror(errno)))"
        }

        /// What to do about it (the `mesh.fix` of its log line).
        public var fix: String {
            let keep = "or set stream_congestion_control = \"system\" to keep the system's"
            let allow = "add it to net.ipv4.tcp_allowed_congestion_control (`sysctl -w net.ipv4.tcp_allowed_congestion_control="
                + "\"$(sysctl -n net.ipv4.tcp_allowed_congestion_control) \(algorithm)\"`, and in /etc/sysctl.d to keep it after a reboot)"
            if unasked {
                return "nothing was refused yet: the first stream at distance asks for \(algorithm) and logs a refusal then; "
                    + "if the agent runs in a sandbox (systemd's RestrictAddressFamilies, seccomp) or at its descriptor limit, allow it TCP sockets"
            }
            switch errno {
            case ENOENT:
                return "the kernel has no \(algorithm) loaded: load it (`modprobe tcp_\(algorithm)`) and, unless the agent has CAP_NET_ADMIN, "
                    + allow + "; or choose one net.ipv4.tcp_allowed_congestion_control lists, " + keep
            case EPERM:
                return "\(algorithm) is loaded but not allowed to this process: " + allow + ", or run the agent with CAP_NET_ADMIN, " + keep
            default:
                return "load tcp_\(algorithm) (`modprobe tcp_\(algorithm)`) and " + allow + ", or run the agent with CAP_NET_ADMIN, " + keep
            }
        }
    }

    /// Applies `choice` to `channel`'s socket; true when the kernel took an algorithm asked for,
    /// false for `.system` (nothing asked). A kernel without the algorithm, or one that lets only
    /// `net.ipv4.tcp_allowed_congestion_control` be chosen without CAP_NET_ADMIN, keeps the
    /// system's: the stream still works, only at distance it ramps as that algorithm does
    /// (logged once per process).
    static func apply(_ choice: Choice, to channel: any Channel, logger: Logger) -> EventLoopFuture<Bool> {
        guard case .algorithm(let name) = choice else { return channel.eventLoop.makeSucceededFuture(false) }
        return set(channel, algorithm: name).recover { error in
            if !refusalLogged.withLockedValue({ let logged = $0; $0 = true; return logged }) {
                let refusal = Refusal(algorithm: name, errno: (error as? IOError)?.errnoCode ?? 0)
                logger.notice("migration streams at distance keep the system's congestion control: the kernel refused \(name)",
                              metadata: ["error": "\(error)", "mesh.fix": "\(refusal.fix)"])
            }
            return false
        }
    }

    /// Whether this process may use `choice` on a TCP socket: nil when it may (or `.system`),
    /// else the kernel's refusal. Asked on a socket of its own, off any event loop, at the
    /// agent's start: the first use of an algorithm not yet loaded may load its module (tens of
    /// milliseconds, once per boot), which should not happen on a stream's event loop, and an
    /// operator learns of a refusal when the agent starts rather than at the first migration
    /// across a distance. The socket is IPv4, or IPv6 where IPv4 sockets are not allowed (a
    /// sandbox's RestrictAddressFamilies).
    public static func check(_ choice: Choice) -> Refusal? {
        #if os(Linux)
        guard case .algorithm(let name) = choice else { return nil }
        var fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if fd < 0 && errno == EAFNOSUPPORT { fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0) }
        guard fd >= 0 else { return Refusal(algorithm: name, errno: errno, unasked: true) }
        defer { close(fd) }
        var bytes = Array(name.utf8.prefix(15)) + [0]
        // errno read inside, right after the call: nothing in between can change it.
        let refused: Int32? = bytes.withUnsafeMutableBytes {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_CONGESTION, $0.baseAddress, socklen_t($0.count)) == 0 ? nil : errno
        }
        return refused.map { Refusal(algorithm: name, errno: $0) }
        #else
        return nil
        #endif
    }

    /// Asks the kernel for `choice` (`check`) and logs a refusal with the fix; blocking, briefly:
    /// call it off the event loops (the agent's start, a reload).
    public static func report(_ choice: Choice, logger: Logger) {
        guard let refusal = check(choice) else { return }
        logger.notice(refusal.unasked ? "could not ask the kernel whether migration streams at distance may use the congestion control configured"
                          : "migration streams at distance will keep the system's congestion control: the kernel refuses the one configured",
                      metadata: ["migration.stream_congestion_control": "\(choice)", "error": "\(refusal)", "mesh.fix": "\(refusal.fix)"])
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
