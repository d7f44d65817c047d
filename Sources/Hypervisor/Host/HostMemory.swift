import Foundation

/// This host's memory and load, from /proc. Every reading is nil when the file cannot be read
/// (for instance with no file descriptor left): callers must not mistake "unknown" for "none" or
/// "plenty".
public enum HostMemory {
    /// Total and available (MemAvailable) memory, bytes; nil when /proc/meminfo cannot be read
    /// or lacks them.
    public static func reading() -> (total: UInt64, available: UInt64)? {
        // Nil is the error, as documented: callers treat it as unknown.
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        guard let total = kibibytes("MemTotal:", in: text), let available = kibibytes("MemAvailable:", in: text) else { return nil }
        return (total * 1024, available * 1024)
    }

    /// MemAvailable in MiB, or nil when unknown.
    public static func availableMiB() -> Int? {
        reading().map { Int($0.available >> 20) }
    }

    /// The 1-minute load average, or nil when /proc/loadavg cannot be read.
    public static func load() -> Double? {
        // Nil is the error, as documented: callers keep the last load they knew.
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return Double(text.split(separator: " ").first ?? "")
    }

    /// A `/proc/meminfo` field, in kB as the kernel writes it.
    static func kibibytes(_ name: String, in text: String) -> UInt64? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }) else { return nil }
        return UInt64(line.split(separator: " ").dropFirst().first ?? "")
    }
}
