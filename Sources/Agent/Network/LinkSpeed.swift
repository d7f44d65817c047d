import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The speed of the network interface that carries one of this host's addresses, as the kernel
/// reports it (`/sys/class/net/IFACE/speed`). Sizes defaults such as the migration limits.
public enum LinkSpeed {
    /// Megabits per second of the interface holding `address`; nil when unknown: not a local
    /// address, a wildcard, loopback or a virtual NIC that reports no speed.
    public static func megabitsPerSecond(of address: String) -> Int? {
        guard let name = interface(holding: address),
              let text = try? String(contentsOfFile: "/sys/class/net/\(name)/speed", encoding: .utf8), // unreadable: unknown (nil), as documented
              let speed = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), speed > 0 else { return nil }
        return speed
    }

    /// The name of the interface holding `address`, nil when none does.
    public static func interface(holding address: String) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let socketAddress = entry.pointee.ifa_addr else { continue }
            let family = Int32(socketAddress.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6 else { continue }
            let length = socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
            var host = [CChar](repeating: 0, count: 1025) // NI_MAXHOST
            guard getnameinfo(socketAddress, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            if String(cString: host) == address { return String(cString: entry.pointee.ifa_name) }
        }
        return nil
    }
}
