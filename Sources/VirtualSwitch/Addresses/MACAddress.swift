/// An Ethernet MAC address (48 bits, stored in the low bits of a `UInt64`).
public struct MACAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address in the low 48 bits, first octet most significant.
    public let rawValue: UInt64

    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)
    /// The all-zero address (unknown target hardware address in ARP requests).
    public static let zero = MACAddress(rawValue: 0)

    /// An address from its 48-bit value (higher bits are ignored).
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    /// An address from 6 bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.init(rawValue: bytes.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// Parses `52:54:00:12:34:56` (either case, `:` or `-` separated); nil if malformed.
    public init?(_ text: String) {
        let parts = text.split(omittingEmptySubsequences: false) { $0 == ":" || $0 == "-" }
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2, let octet = UInt8(part, radix: 16) else { return nil }
            value = value << 8 | UInt64(octet)
        }
        self.init(rawValue: value)
    }

    /// The 6 bytes, first octet first.
    public var bytes: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> (40 - 8 * $0)) }
    }

    /// True for group addresses (broadcast and multicast): the low bit of the first octet.
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    /// True for `ff:ff:ff:ff:ff:ff`.
    public var isBroadcast: Bool { self == .broadcast }

    /// The IPv6 link-local address a host derives from this MAC with modified EUI-64 (RFC 4291
    /// appendix A), the kernel's default `addr_gen_mode`.
    public var ipv6LinkLocal: IPAddress {
        let b = bytes
        let interfaceID: [UInt8] = [b[0] ^ 0x02, b[1], b[2], 0xFF, 0xFE, b[3], b[4], b[5]]
        return IPAddress.v6(high: 0xFE80_0000_0000_0000, low: interfaceID.reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// `52:54:00:12:34:56`.
    public var description: String {
        bytes.map { byte in
            let digits = String(byte, radix: 16)
            return byte < 16 ? "0" + digits : digits
        }.joined(separator: ":")
    }

    /// Orders addresses numerically.
    public static func < (lhs: MACAddress, rhs: MACAddress) -> Bool { lhs.rawValue < rhs.rawValue }
}
