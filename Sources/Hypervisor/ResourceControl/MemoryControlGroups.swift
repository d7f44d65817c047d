import Foundation
import Glibc

/// Memory limits and reservations of QEMU processes through the kernel's cgroup memory
/// controller (Protocol.md §10.11), v1 or v2. One group per VM, `vm-<id>`, under the agent's
/// own directory in the memory hierarchy (`hostmesh-<host id>-<tag>`, as for the cpu controller):
///
/// - a limit l MiB caps the QEMU process at `min(l, RAM) + overheadMiB` (v1
///   `memory.limit_in_bytes`, v2 `memory.max`): the guest's memory plus QEMU's own;
/// - a reservation r MiB protects r MiB of it from reclaim (v2 `memory.min`); v1 has no such
///   protection, its nearest is `memory.soft_limit_in_bytes` = r (under memory pressure the
///   group is reclaimed down to r before groups below their soft limit), with the host's
///   admission (Σ reservations ≤ capacity) doing the rest.
public struct MemoryControlGroups: Sendable {
    public let version: CPUControlGroups.Version
    /// This agent's directory (created on first use).
    public let root: String

    /// What QEMU needs beside the guest's RAM (its own heap, the TCG translation cache, device
    /// buffers), MiB: added to every limit so that a guest within its limit never meets the
    /// kernel's OOM killer.
    public static let overheadMiB = 160

    /// Finds the memory controller: a cgroup v1 hierarchy with `memory`, else cgroup v2 with
    /// `memory` in the agent's cgroup's controllers. Throws, naming what is missing, when neither.
    public static func detect(agent name: String, mounts: String? = nil, membership: String? = nil) throws(ResourceControlError) -> MemoryControlGroups {
        guard let mounts = mounts ?? (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) else { // unreadable: reported as missing
            throw .unavailable("cannot read /proc/self/mounts to find the cgroup memory controller")
        }
        let own = membership ?? (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)) ?? "" // unreadable: the root cgroup is assumed
        let directory = "hostmesh-" + name.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" }
        var v2Mount: String?
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 4 else { continue }
            if f[2] == "cgroup", f[3].split(separator: ",").contains("memory") {
                return MemoryControlGroups(version: .v1, root: CPUControlGroups.join(String(f[1]), CPUControlGroups.ownPath(own, v1Controller: "memory"), directory))
            }
            if f[2] == "cgroup2" { v2Mount = String(f[1]) }
        }
        guard let v2Mount else {
            throw .unavailable("no cgroup memory controller is mounted (neither a cgroup v1 `memory` hierarchy nor cgroup v2): mount one, "
                               + "e.g. `mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory`, or set no memory limit or reservation")
        }
        let parent = CPUControlGroups.join(v2Mount, CPUControlGroups.ownPath(own, v1Controller: nil), "")
        let controllers = (try? String(contentsOfFile: parent + "/cgroup.controllers", encoding: .utf8)) ?? "" // unreadable: treated as none, reported below
        guard controllers.split(whereSeparator: \.isWhitespace).contains("memory") else {
            throw .unavailable("cgroup v2 is mounted at \(v2Mount) but the memory controller is not available in \(parent) "
                               + "(cgroup.controllers: \"\(controllers.trimmingCharacters(in: .whitespacesAndNewlines))\"): delegate it to the agent "
                               + "(systemd: Delegate=memory), or set no memory limit or reservation")
        }
        return MemoryControlGroups(version: .v2, root: CPUControlGroups.join(v2Mount, CPUControlGroups.ownPath(own, v1Controller: nil), directory))
    }

    public func directory(vm: String) -> String { root + "/vm-" + vm }

    /// The files and values that enforce a limit of `limitMiB` (nil: none) and a reservation of
    /// `reservationMiB` on a guest of `memoryMiB`, in the order they are written.
    public func settings(memoryMiB: Int, limitMiB: Int?, reservationMiB: Int) -> [(file: String, value: String)] {
        let cap = limitMiB.map { (min($0, memoryMiB) + Self.overheadMiB) << 20 }
        let reserved = min(reservationMiB, memoryMiB) << 20
        switch version {
        case .v1:
            return [("memory.limit_in_bytes", cap.map(String.init) ?? "-1"), ("memory.soft_limit_in_bytes", reserved > 0 ? "\(reserved)" : "-1")]
        case .v2:
            return [("memory.max", cap.map(String.init) ?? "max"), ("memory.min", "\(reserved)")]
        }
    }

    /// Puts QEMU `pid` in VM `vm`'s group with its limit and reservation.
    public func place(pid: Int32, vm: String, memoryMiB: Int, limitMiB: Int?, reservationMiB: Int) throws(ResourceControlError) {
        try CGroupFiles.ensure(root, controller: "memory", v2: version == .v2)
        let group = directory(vm: vm)
        try CGroupFiles.ensure(group, controller: "memory", v2: version == .v2)
        for (file, value) in settings(memoryMiB: memoryMiB, limitMiB: limitMiB, reservationMiB: reservationMiB) {
            try CGroupFiles.write(value + "\n", to: group + "/" + file)
        }
        if version == .v1 {
            // Pages QEMU touched before it joined move with it, so they count against the limit;
            // a kernel without the knob still charges everything touched from now on (the guest's RAM).
            try? CGroupFiles.write("3\n", to: group + "/memory.move_charge_at_immigrate")
        }
        try CGroupFiles.write("\(pid)\n", to: group + "/cgroup.procs")
    }

    /// Removes a VM's group once its QEMU has exited (a group with processes stays).
    public func remove(vm: String) {
        // Best effort: a group that still has a process (or is gone already) is simply left.
        _ = rmdir(directory(vm: vm))
    }
}
