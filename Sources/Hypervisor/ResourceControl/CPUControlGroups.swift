import Foundation
import Glibc

/// CPU limits and shares of QEMU processes through the kernel's cgroup cpu controller
/// (Protocol.md §10.9), v1 (`cpu.cfs_quota_us`, `cpu.shares`) or v2 (`cpu.max`, `cpu.weight`).
/// The groups live under the agent's own cgroup, one directory per agent
/// (`hostmesh-<host id>`), then one per pool (`pool-<name>`), then one per VM (`vm-<id>`): a
/// pool's limit caps its VMs on this host together, a VM's caps it alone, shares weigh siblings.
public struct CPUControlGroups: Sendable {
    public enum Version: String, Sendable { case v1, v2 }

    public let version: Version
    /// This agent's directory (created on first use).
    public let root: String

    /// The CFS period the limits are expressed in, microseconds.
    public static let periodMicroseconds = 100_000

    /// Finds the cpu controller this process can use: cgroup v1 with a `cpu` hierarchy, else v2
    /// with `cpu` in the agent's cgroup's controllers. Throws, naming what is missing, when neither.
    public static func detect(agent name: String, mounts: String? = nil, membership: String? = nil) throws(ResourceControlError) -> CPUControlGroups {
        guard let mounts = mounts ?? (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) else { // unreadable: reported as missing below
            throw .unavailable("cannot read /proc/self/mounts to find the cgroup cpu controller")
        }
        let own = membership ?? (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "" // unreadable: the root cgroup is assumed
        let directory = "hostmesh-" + name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }
        var v2Mount: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            if f[2] == "cgroup", f[3].split(separator: ",").contains("cpu") {
                let path = Self.ownPath(own, v1Controller: "cpu")
                return CPUControlGroups(version: .v1, root: Self.join(String(f[1]), path, directory))
            }
            if f[2] == "cgroup2" { v2Mount = String(f[1]) }
        }
        guard let v2Mount else {
            throw .unavailable("no cgroup cpu controller is mounted (neither a cgroup v1 `cpu` hierarchy nor cgroup v2): mount one, "
                               + "e.g. `mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu`, or set no CPU limits and normal shares")
        }
        let path = Self.ownPath(own, v1Controller: nil)
        let parent = Self.join(v2Mount, path, "")
        let controllers = (try? String(contentsOfFile: parent + "/cgroup.controllers", encoding: .utf8)) ?? "" // unreadable: treated as none, reported below
        guard controllers.split(whereSeparator: \.isWhitespace).contains("cpu") else {
            throw .unavailable("cgroup v2 is mounted at \(v2Mount) but the cpu controller is not available in \(parent) "
                               + "(cgroup.controllers: \"\(controllers.trimmingCharacters(in: .whitespacesAndNewlines))\"): delegate it to the agent "
                               + "(systemd: Delegate=cpu), or set no CPU limits and normal shares")
        }
        return CPUControlGroups(version: .v2, root: Self.join(v2Mount, path, directory))
    }

    /// The agent's cgroup path for a v1 controller (or v2's `0::` line when nil).
    static func ownPath(_ membership: String, v1Controller: String?) -> String {
        for line in membership.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3 else { continue }
            if let v1Controller, f[1].split(separator: ",").contains(Substring(v1Controller)) { return String(f[2]) }
            if v1Controller == nil, f[0] == "0", f[1].isEmpty { return String(f[2]) }
        }
        return "/"
    }

    static func join(_ parts: String...) -> String {
        "/" + parts.flatMap { $0.split(separator: "/") }.joined(separator: "/")
    }

    /// Directory of a pool's group, or of the agent's for VMs in no pool.
    public func directory(pool: String?) -> String { pool.map { root + "/pool-" + $0 } ?? root }

    public func directory(vm: String, pool: String?) -> String { directory(pool: pool) + "/vm-" + vm }

    /// Creates (if needed) and sets a pool's group: its limit over all its VMs here, its shares.
    public func configurePool(_ pool: String, limitMilli: Int?, shares: Int) throws(ResourceControlError) {
        try ensure(root)
        try ensure(directory(pool: pool))
        try set(directory(pool: pool), limitMilli: limitMilli, shares: shares)
    }

    /// Puts QEMU `pid` (every thread) in VM `vm`'s group, inside its pool's, with the VM's limit
    /// and shares. The pool's group must be configured first (`configurePool`).
    public func place(pid: Int32, vm: String, pool: String?, limitMilli: Int?, shares: Int) throws(ResourceControlError) {
        try ensure(root)
        if let pool { try ensure(directory(pool: pool)) }
        let group = directory(vm: vm, pool: pool)
        try ensure(group)
        try set(group, limitMilli: limitMilli, shares: shares)
        try write("\(pid)\n", to: group + "/cgroup.procs")
    }

    /// Removes a VM's group once its QEMU has exited (a group with processes stays; the next
    /// placement of the same VM reuses it).
    public func remove(vm: String, pool: String?) {
        // Best effort: a group that still has a process (or is gone already) is simply left.
        _ = rmdir(directory(vm: vm, pool: pool))
    }

    /// CPU time and throttling of a VM's group: `usage_usec` (v2) or cpuacct is not read here;
    /// `nr_throttled` and `throttled_usec` from `cpu.stat` (v1's `throttled_time` is in ns).
    public func throttling(vm: String, pool: String?) -> (periods: Int, throttled: Int, throttledMicroseconds: Int)? {
        guard let text = try? String(contentsOfFile: directory(vm: vm, pool: pool) + "/cpu.stat", encoding: .utf8) else { return nil } // no group: nil, as documented
        var values: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let n = Int(f[1]) { values[String(f[0])] = n }
        }
        let throttledMicroseconds = values["throttled_usec"] ?? (values["throttled_time"].map { $0 / 1000 } ?? 0)
        return (values["nr_periods"] ?? 0, values["nr_throttled"] ?? 0, throttledMicroseconds)
    }

    private func set(_ group: String, limitMilli: Int?, shares: Int) throws(ResourceControlError) {
        let period = Self.periodMicroseconds
        // A limit of m thousandths of a core is m/1000 of each period; the kernel's minimum quota is 1 ms.
        let quota = limitMilli.map { max(1000, $0 * period / 1000) }
        switch version {
        case .v1:
            try write("\(period)\n", to: group + "/cpu.cfs_period_us")
            try write("\(quota ?? -1)\n", to: group + "/cpu.cfs_quota_us")
            // cgroup v1's default weight is 1024 for vSphere's normal 1000; its range is 2-262144.
            try write("\(min(262_144, max(2, shares * 1024 / 1000)))\n", to: group + "/cpu.shares")
        case .v2:
            try write("\(quota.map(String.init) ?? "max") \(period)\n", to: group + "/cpu.max")
            // cgroup v2's default weight is 100; its range is 1-10000.
            try write("\(min(10_000, max(1, shares / 10)))\n", to: group + "/cpu.weight")
        }
    }

    private func ensure(_ group: String) throws(ResourceControlError) {
        try CGroupFiles.ensure(group, controller: "cpu", v2: version == .v2)
    }

    private func write(_ text: String, to path: String) throws(ResourceControlError) {
        try CGroupFiles.write(text, to: path)
    }
}

/// Why a VM's CPU or memory limits, shares or reservations cannot be enforced on this host.
public enum ResourceControlError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No usable cgroup cpu controller.
    case unavailable(String)
    /// The controller is there but a group could not be made or set.
    case failed(String)

    public var description: String {
        switch self {
        case .unavailable(let text), .failed(let text): return text
        }
    }
}
