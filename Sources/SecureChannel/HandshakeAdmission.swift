import NIOConcurrencyHelpers
public import NIOCore

/// Bounds the connections still in the handshake (accepted, not yet authenticated), per
/// listener and per source prefix (Protocol.md §3.3): a connection past either bound is closed
/// before a byte of it is read. Without it, each unauthenticated connection costs a socket,
/// a handler and its timer for the whole handshake timeout, and many source addresses get
/// around the per-address rate limit (issue 19, finding 4). Pure: no clock, no sockets.
public struct HandshakeAdmission: Sendable {
    /// Most connections in the handshake at once on one listener.
    public let maxPerListener: Int
    /// Most connections in the handshake at once from one source prefix.
    public let maxPerPrefix: Int
    private var total = 0
    private var perPrefix: [SourcePrefix: Int] = [:]

    /// Defaults: 256 per listener, 32 per /24 (IPv4) or /64 (IPv6). A whole rack restarting
    /// at once stays under them: a handshake takes a few milliseconds, not the timeout.
    public init(maxPerListener: Int = 256, maxPerPrefix: Int = 32) {
        self.maxPerListener = maxPerListener
        self.maxPerPrefix = maxPerPrefix
    }

    /// Why a connection was not admitted.
    public enum Refusal: Sendable, Equatable {
        /// `maxPerListener` connections are already in the handshake.
        case listenerFull
        /// `maxPerPrefix` connections from this prefix are already in the handshake.
        case prefixFull(SourcePrefix)
    }

    /// Admits one connection from `prefix` into the handshake, or says why not. An admitted
    /// connection MUST be released (`release`) exactly once when its handshake ends either way.
    public mutating func admit(_ prefix: SourcePrefix) -> Refusal? {
        guard total < maxPerListener else { return .listenerFull }
        let current = perPrefix[prefix, default: 0]
        guard current < maxPerPrefix else { return .prefixFull(prefix) }
        total += 1
        perPrefix[prefix] = current + 1
        return nil
    }

    /// Ends the handshake of a connection admitted from `prefix`.
    public mutating func release(_ prefix: SourcePrefix) {
        guard let current = perPrefix[prefix] else { return }
        total -= 1
        perPrefix[prefix] = current > 1 ? current - 1 : nil
    }

    /// Connections in the handshake now (for tests and metrics).
    public var inHandshake: Int { total }
}

/// The network a source address belongs to for the handshake caps: its /24 for IPv4 and its
/// /64 for IPv6 (one site or one customer usually holds a whole prefix, so counting addresses
/// alone would let one attacker with a prefix multiply every per-source bound).
public struct SourcePrefix: Hashable, Sendable, CustomStringConvertible {
    /// The prefix bytes: 3 for IPv4, 8 for IPv6, empty for an address that is neither.
    public let bytes: [UInt8]

    /// The prefix of `address`; unix sockets and unknown addresses share one empty prefix.
    public init(_ address: SocketAddress?) {
        switch address {
        case .v4(let v4)?:
            let raw = UInt32(bigEndian: v4.address.sin_addr.s_addr)
            bytes = [UInt8(raw >> 24), UInt8(truncatingIfNeeded: raw >> 16), UInt8(truncatingIfNeeded: raw >> 8)]
        case .v6(let v6)?:
            bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0.prefix(8)) }
        default:
            bytes = []
        }
    }

    public var description: String {
        switch bytes.count {
        case 3: return bytes.map { "\($0)" }.joined(separator: ".") + ".0/24"
        case 8: return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
        default: return "(no address)"
        }
    }
}

/// A `HandshakeAdmission` shared by every connection of one listener (they may run on
/// different event loops).
public final class SharedHandshakeAdmission: Sendable {
    private let admission: NIOLockedValueBox<HandshakeAdmission>

    /// Wraps an admission policy.
    public init(_ admission: HandshakeAdmission = HandshakeAdmission()) {
        self.admission = NIOLockedValueBox(admission)
    }

    /// Admits a connection from `prefix`, or says why not.
    public func admit(_ prefix: SourcePrefix) -> HandshakeAdmission.Refusal? {
        admission.withLockedValue { $0.admit(prefix) }
    }

    /// Ends the handshake of a connection admitted from `prefix`.
    public func release(_ prefix: SourcePrefix) {
        admission.withLockedValue { $0.release(prefix) }
    }

    /// Connections in the handshake now.
    public var inHandshake: Int { admission.withLockedValue { $0.inHandshake } }
    /// The per-listener cap.
    public var maxPerListener: Int { admission.withLockedValue { $0.maxPerListener } }
    /// The per-prefix cap.
    public var maxPerPrefix: Int { admission.withLockedValue { $0.maxPerPrefix } }
}
