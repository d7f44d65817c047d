import Foundation
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// Deletes a disk image whose guest no longer needs it without making the caller wait for the
/// file system to free its blocks. ext4 frees a file's extents in the unlink that drops its last
/// reference: 130 ms for an image with 512 MiB written on this project's hosts, seconds for a
/// large one, all of it inside the `migrate` command and its outgoing slot. Here the name goes at
/// once (`unlink` with a descriptor still open returns in microseconds) and the blocks are freed
/// when that descriptor closes, on a thread of NIO's blocking pool. A crash in between loses
/// nothing: the kernel closes the descriptor at exit, and an unlinked inode still open at a
/// system crash is on ext4's orphan list, freed at the next mount. The space therefore comes back
/// shortly after `remove` returns, not at once: a room check on the same file system right after
/// may still count it as used.
public enum ImageDeletion {
    /// Linux's O_PATH (010000000 on every architecture but alpha, parisc and sparc), which Glibc's
    /// Swift overlay leaves out (a GNU extension).
    static let pathOnly: Int32 = 0o10000000

    /// Removes `path`; its blocks are freed in the background. Throws when the name cannot be
    /// removed (the file then stays, as `FileManager.removeItem` would leave it).
    public static func remove(_ path: String) throws {
        #if os(Linux)
        // O_PATH: holds the inode without reading it (no permission needed, never blocks on a FIFO, opens no device).
        let descriptor = open(path, pathOnly | O_CLOEXEC)
        do { try FileManager.default.removeItem(atPath: path) } catch {
            if descriptor >= 0 { close(descriptor) }
            throw error
        }
        guard descriptor >= 0 else { return } // could not be opened: the unlink above freed the blocks itself
        // Whatever the pool's state (`.cancelled` when it is not running), the descriptor is closed.
        NIOThreadPool.singleton.submit { _ in close(descriptor) }
        #else
        try FileManager.default.removeItem(atPath: path)
        #endif
    }
}
