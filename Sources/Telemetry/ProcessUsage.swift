import Foundation

/// What a process costs the host, from `/proc/<pid>/stat` and `/proc/<pid>/status`: CPU time in
/// user and kernel mode, resident memory, threads. For a VM, its QEMU process: the guest's vCPUs,
/// its device emulation and QEMU's own work.
public struct ProcessUsage: Sendable, Equatable {
    /// CPU time in user mode and in kernel mode, clock ticks (`ticksPerSecond` a second).
    public var userTicks: UInt64
    public var systemTicks: UInt64
    /// Resident set size (`VmRSS`), bytes.
    public var residentBytes: UInt64
    public var threads: Int

    public init(userTicks: UInt64, systemTicks: UInt64, residentBytes: UInt64, threads: Int) {
        self.userTicks = userTicks
        self.systemTicks = systemTicks
        self.residentBytes = residentBytes
        self.threads = threads
    }

    /// Clock ticks a second of the CPU times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
    public static let ticksPerSecond: Double = {
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        return ticks > 0 ? Double(ticks) : 100
    }()

    /// The usage of process `pid` now; nil when it is gone or unreadable.
    public static func read(pid: Int32) -> ProcessUsage? {
        // Unreadable: the process exited (or was never there); nothing to report.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil } // as above
        return parse(stat: stat, status: status)
    }

    /// Parses the two files' text. The command name in `stat` is in parentheses and may hold
    /// spaces and parentheses itself: the fields are counted after its last `)`.
    public static func parse(stat: String, status: String) -> ProcessUsage? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        // After the name: state (field 3), ppid, …, utime (14), stime (15), …, num_threads (20).
        let fields = stat[stat.index(after: close)...].split(whereSeparator: \.isWhitespace)
        guard fields.count > 17, let user = UInt64(fields[11]), let system = UInt64(fields[12]), let threads = Int(fields[17]) else { return nil }
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return nil }
        let parts = line.split(whereSeparator: \.isWhitespace)
        guard parts.count >= 3, parts[2] == "kB", let kib = UInt64(parts[1]) else { return nil }
        return ProcessUsage(userTicks: user, systemTicks: system, residentBytes: kib * 1024, threads: threads)
    }
}
