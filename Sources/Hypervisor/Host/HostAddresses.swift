import Foundation

/// This host's IP addresses, and which one other hosts most likely reach it at: what an agent
/// with wildcard listeners advertises when it is not told (as memberlist and Consul do).
public enum HostAddresses {
    /// One address on one interface.
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        /// Interface name, e.g. `eth0`.
        public var interface: String
        /// The address, e.g. `10.9.0.1` or `fd00::1`.
        public var address: String
        /// True for IPv6.
        public var isIPv6: Bool

        /// An address.
        public init(interface: String, address: String, isIPv6: Bool) {
            self.interface = interface
            self.address = address
            self.isIPv6 = isIPv6
        }

        public var description: String { "\(address) (\(interface))" }
    }

    /// Why no address can be chosen.
    public enum ChoiceError: Error, Sendable, Equatable, CustomStringConvertible {
        /// No address but loopback.
        case none
        /// Several candidates and no default route to pick between them.
        case ambiguous([Address])

        public var description: String {
            switch self {
            case .none:
                return "this host has no address other than loopback: set advertise_host (--advertise) to the address other hosts reach it at"
            case .ambiguous(let candidates):
                return "cannot tell which address other hosts reach this one at (no default route; candidates: "
                    + candidates.map(\.description).joined(separator: ", ") + "): set advertise_host (--advertise) to one of them"
            }
        }
    }

    /// The address to advertise: IPv4 before IPv6, the (first) address of the interface that
    /// holds the default route, else the only non-loopback, non-link-local address.
    public static func choose(from addresses: [Address], defaultRouteInterface: String?) -> Result<Address, ChoiceError> {
        let usable = addresses.filter { !isLoopback($0) && !isLinkLocal($0) }
        for family in [false, true] {
            let candidates = usable.filter { $0.isIPv6 == family }
            if let route = defaultRouteInterface, let onRoute = candidates.first(where: { $0.interface == route }) { return .success(onRoute) }
            if candidates.count == 1 { return .success(candidates[0]) }
            if candidates.count > 1 { return .failure(.ambiguous(candidates)) }
        }
        return .failure(.none)
    }

    /// The address to advertise on this host now.
    public static func advertised() -> Result<Address, ChoiceError> {
        choose(from: current(), defaultRouteInterface: defaultRouteInterface())
    }

    static func isLoopback(_ a: Address) -> Bool { a.address.hasPrefix("127.") || a.address == "::1" }
    static func isLinkLocal(_ a: Address) -> Bool { a.address.hasPrefix("169.254.") || a.address.lowercased().hasPrefix("fe80:") }

    /// Every address on every interface that is up.
    public static func current() -> [Address] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var out: [Address] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let socketAddress = entry.pointee.ifa_addr, (entry.pointee.ifa_flags & UInt32(IFF_UP)) != 0 else { continue }
            let family = Int32(socketAddress.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            let length = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
            guard getnameinfo(socketAddress, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            out.append(Address(interface: String(cString: entry.pointee.ifa_name), address: address, isIPv6: family == AF_INET6))
        }
        return out
    }

    /// The interface of the IPv4 default route (/proc/net/route), if there is one.
    public static func defaultRouteInterface(table: String? = nil) -> String? {
        guard let text = table ?? (try? String(contentsOfFile: "/proc/net/route", encoding: .utf8)) else { return nil } // no table: no route known
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count > 7, fields[1] == "00000000", fields[7] == "00000000" { return String(fields[0]) }
        }
        return nil
    }
}
