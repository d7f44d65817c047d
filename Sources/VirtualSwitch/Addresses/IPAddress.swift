#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address.
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// IPv4, most significant octet first.
    case v4(UInt32)
    /// IPv6 as two 64-bit halves, most significant first.
    case v6(high: UInt64, low: UInt64)

    /// `0.0.0.0`.
    public static let unspecifiedV4 = IPAddress.v4(0)
    /// `255.255.255.255`.
    public static let broadcastV4 = IPAddress.v4(0xFFFF_FFFF)
    /// `::`.
    public static let unspecifiedV6 = IPAddress.v6(high: 0, low: 0)

    /// Parses dotted-quad IPv4 or textual IPv6; nil if malformed.
    public init?(_ text: String) {
        if !text.contains(":") {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for part in parts {
                guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt8(part) else { return nil }
                value = value << 8 | UInt32(octet)
            }
            self = .v4(value)
            return
        }
        var storage = in6_addr()
        guard inet_pton(AF_INET6, text, &storage) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &storage) { Array($0) }
        self.init(bytes: bytes)
    }

    /// An address from 4 or 16 bytes in network order; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        switch array.count {
        case 4:
            self = .v4(array.reduce(0) { $0 << 8 | UInt32($1) })
        case 16:
            self = .v6(high: array[0..<8].reduce(0) { $0 << 8 | UInt64($1) },
                       low: array[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
        default:
            return nil
        }
    }

    /// The address in network order (4 or 16 bytes).
    public var bytes: [UInt8] {
        switch self {
        case let .v4(value):
            return (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * $0)) }
        case let .v6(high, low):
            return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
                + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        }
    }

    /// True for IPv4.
    public var isV4: Bool {
        if case .v4 = self { return true }
        return false
    }

    /// Address length in bits (32 or 128).
    public var bitWidth: Int { isV4 ? 32 : 128 }

    /// True for IPv4 multicast/broadcast and IPv6 multicast (`ff00::/8`).
    public var isMulticastOrBroadcast: Bool {
        switch self {
        case let .v4(value): return value >> 28 == 0xE || value == 0xFFFF_FFFF
        case let .v6(high, _): return high >> 56 == 0xFF
        }
    }

    /// `10.77.0.2` or RFC 5952 IPv6 text.
    public var description: String {
        switch self {
        case let .v4(value):
            return (0..<4).map { String(UInt8(truncatingIfNeeded: value >> (24 - 8 * $0))) }.joined(separator: ".")
        case .v6:
            var storage = in6_addr()
            let raw = bytes
            withUnsafeMutableBytes(of: &storage) { $0.copyBytes(from: raw) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &storage, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Orders IPv4 before IPv6, then numerically.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        switch (lhs, rhs) {
        case let (.v4(a), .v4(b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        case let (.v6(ah, al), .v6(bh, bl)): return (ah, al) < (bh, bl)
        }
    }
}

/// An IPv4 or IPv6 prefix (`10.77.0.0/24`); a single address is a full-length prefix.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits are cleared).
    public let address: IPAddress
    /// Prefix length in bits.
    public let length: Int

    /// A prefix; host bits of `address` are cleared. Nil if `length` is out of range.
    public init?(address: IPAddress, length: Int) {
        guard (0...address.bitWidth).contains(length) else { return nil }
        self.length = length
        self.address = Self.mask(address, length)
    }

    /// The single-address prefix (`/32` or `/128`).
    public init(host address: IPAddress) {
        self.address = address
        self.length = address.bitWidth
    }

    /// Parses `10.77.0.0/24`, `fd00::/64` or a bare address (full length); nil if malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPAddress(String(parts[0])) else { return nil }
        if parts.count == 1 {
            self.init(host: address)
        } else {
            guard let length = Int(parts[1]) else { return nil }
            self.init(address: address, length: length)
        }
    }

    /// True when this prefix is a single address.
    public var isHost: Bool { length == address.bitWidth }

    /// True when `ip` lies in the prefix (never across families).
    public func contains(_ ip: IPAddress) -> Bool {
        guard ip.isV4 == address.isV4 else { return false }
        return Self.mask(ip, length) == address
    }

    /// `10.77.0.0/24`.
    public var description: String { "\(address)/\(length)" }

    private static func mask(_ ip: IPAddress, _ length: Int) -> IPAddress {
        switch ip {
        case let .v4(value):
            return .v4(length == 0 ? 0 : value & ~UInt32(0) << (32 - length))
        case let .v6(high, low):
            let highMask: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << (64 - length))
            let lowMask: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << (128 - length))
            return .v6(high: high & highMask, low: low & lowMask)
        }
    }
}
