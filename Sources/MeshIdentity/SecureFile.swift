import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Reading and writing files that hold secrets or identity material.
///
/// Secret files are created with mode 0600 from the first byte (never chmod-ed after the fact),
/// written to a temporary name, fsync-ed and renamed, so a crash leaves either the old or the new file.
public enum SecureFile {
    /// Writes `bytes` to `path` atomically with the given mode. Refuses to replace an existing
    /// file unless `overwrite` is set.
    public static func write(_ bytes: [UInt8], to path: String, mode: UInt32, overwrite: Bool = false) throws(IdentityError) {
        if !overwrite, FileManager.default.fileExists(atPath: path) { throw .fileExists(path: path) }
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw .fileWriteFailed(path: path, reason: String(cString: strerror(errno))) }
        // The umask may have cleared bits we asked for; set the exact mode.
        _ = fchmod(fd, mode_t(mode))
        var offset = 0
        let failure: String? = bytes.withUnsafeBytes { buf -> String? in
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 { if errno == EINTR { continue }; return String(cString: strerror(errno)) }
                offset += n
            }
            return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
        }
        close(fd)
        if let failure { unlink(tmp); throw .fileWriteFailed(path: path, reason: failure) }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno)); unlink(tmp)
            throw .fileWriteFailed(path: path, reason: reason)
        }
    }

    /// Reads a secret file, refusing it when group or others can read or write it.
    public static func readSecret(_ path: String, what: String) throws(IdentityError) -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .fileMissing(path: path, what: what) }
        let mode = UInt16(st.st_mode & 0o7777)
        guard mode & 0o077 == 0 else { throw .keyFileTooOpen(path: path, mode: mode) }
        return try read(path, what: what)
    }

    /// Reads a public file.
    public static func read(_ path: String, what: String) throws(IdentityError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .fileMissing(path: path, what: what) }
        return [UInt8](data)
    }
}
