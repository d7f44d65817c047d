import Foundation

/// Memory the kernel could hand out now, from /proc/meminfo.
public enum HostMemory {
    /// MemAvailable in MiB, or nil when /proc/meminfo cannot be read (for instance with no file
    /// descriptor left): callers must not mistake "unknown" for "none" or "plenty".
    public static func availableMiB() -> Int? {
        // Nil is the error, as documented: callers treat it as unknown.
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        return field("MemAvailable:", in: text)
    }

    /// MemTotal in MiB, or nil when unknown.
    public static func totalMiB() -> Int? {
        // Nil is the error, as documented: callers treat it as unknown.
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        return field("MemTotal:", in: text)
    }

    /// A `/proc/meminfo` field (kB) in MiB.
    static func field(_ name: String, in text: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kib / 1024
    }
}
