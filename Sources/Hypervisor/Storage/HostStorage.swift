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

    /// Whether files in `directory` can be opened with O_DIRECT (QEMU's `cache.direct=on`): ext4,
    /// xfs and most block file systems can; tmpfs before Linux 6.6 and some FUSE file systems
    /// cannot, and QEMU then refuses to open the disk at all. Probed the way OpenStack Nova
    /// chooses `cache=none`: a scratch file created with O_DIRECT, removed at once. Any failure
    /// (the directory missing or not writable, too) answers false: the disk then opens through
    /// the page cache as before, and QEMU itself reports a path it cannot open.
    public static func supportsDirectIO(directory: String) -> Bool {
        let probe = (directory.isEmpty ? "." : directory) + "/.hostmesh-direct-io-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let fd = open(probe, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | directIOFlag, 0o600)
        guard fd >= 0 else { return false }
        close(fd)
        unlink(probe)
        return true
    }

    /// Whether the file `path` (existing or about to be created) can be opened with O_DIRECT:
    /// its directory is probed.
    public static func supportsDirectIO(forFile path: String) -> Bool {
        supportsDirectIO(directory: (path as NSString).deletingLastPathComponent)
    }

    /// Linux's O_DIRECT: octal 040000 on x86-64, 0200000 on arm64 (where 040000 is
    /// O_DIRECTORY). Glibc's Swift overlay does not export it: the C macro is behind _GNU_SOURCE.
    #if arch(arm64)
    static let directIOFlag: Int32 = 0o200000
    #else
    static let directIOFlag: Int32 = 0o40000
    #endif
}
