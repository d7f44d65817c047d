import Foundation
import Hypervisor

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
        HostAddresses.current().first { $0.address == address }?.interface
    }
}
