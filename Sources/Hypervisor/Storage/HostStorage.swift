import Foundation

/// Free space on this host's file systems.
public enum HostStorage {
    /// Bytes an unprivileged writer may still allocate on the file system holding `path` (or its
    /// nearest existing parent); nil when it cannot be read.
    public static func availableBytes(at path: String) -> UInt64? {
        var candidate = path
        while !FileManager.default.fileExists(atPath: candidate), candidate != "/" {
            candidate = (candidate as NSString).deletingLastPathComponent
            if candidate.isEmpty { candidate = "/" }
        }
        var stats = statvfs()
        guard statvfs(candidate, &stats) == 0 else { return nil }
        return UInt64(stats.f_bavail) * UInt64(stats.f_frsize)
    }
}
