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

    /// Whether the disk image at `path` can be opened with O_DIRECT (QEMU's `cache.direct=on`):
    /// on ext4, xfs, NFS and block devices it can; on tmpfs before Linux 6.6 and some FUSE file
    /// systems it cannot, and QEMU would then refuse to open the disk at all. The image itself is
    /// opened read-only with O_DIRECT and closed (nothing is created or written: a symlink is
    /// followed to where the data lives, and a read-only mount answers as well as any). Any failure,
    /// the image missing included, answers false: the disk then opens through the page cache, and
    /// QEMU itself reports a path it cannot open.
    public static func supportsDirectIO(path: String) -> Bool {
        guard let directIOFlag else { return false }
        let fd = open(path, O_RDONLY | O_CLOEXEC | directIOFlag)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Linux's O_DIRECT: octal 040000 on x86-64, 0200000 on arm64 (where 040000 is
    /// O_DIRECTORY); nil on an architecture not listed (no O_DIRECT then: never guess a flag).
    /// Glibc's Swift overlay does not export it: the C macro is behind _GNU_SOURCE.
    #if arch(x86_64)
    static let directIOFlag: Int32? = 0o40000
    #elseif arch(arm64)
    static let directIOFlag: Int32? = 0o200000
    #else
    static let directIOFlag: Int32? = nil
    #endif
}
