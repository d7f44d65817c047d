import Foundation

/// `qemu-img`, run as a child process without blocking a thread: reads an image's facts and
/// creates the empty images a migration mirrors into.
public enum QEMUImageTool {
    /// The facts about an image at `path` (`qemu-img info --force-share`: a running VM's image
    /// is locked by its QEMU, and reading its header beside it is safe).
    public static func info(_ path: String) async throws(DiskImageError) -> DiskImageInfo {
        guard FileManager.default.fileExists(atPath: path) else { throw .missing(path: path) }
        guard FileManager.default.isReadableFile(atPath: path) else { throw .unreadable(path: path, reason: "permission denied") }
        let (status, output) = try await run(["info", "--force-share", "--output=json", path])
        guard status == 0 else { throw .unreadable(path: path, reason: output.trimmingCharacters(in: .whitespacesAndNewlines)) }
        do {
            return try DiskImageInfo(path: path, json: Data(output.utf8))
        } catch {
            throw .unreadable(path: path, reason: "qemu-img info said something unexpected: \(error)")
        }
    }

    /// Creates an empty image of `format` and `virtualSize` bytes at `path` (which must not
    /// exist): sparse for a thin raw image, fully allocated (`preallocation=falloc`) otherwise.
    public static func create(_ path: String, format: VMSpec.Disk.Format, virtualSize: UInt64, thin: Bool) async throws(DiskImageError) {
        guard !FileManager.default.fileExists(atPath: path) else { throw .createFailed(path: path, reason: "a file is already there") }
        var arguments = ["create", "-q", "-f", format.rawValue]
        if !thin { arguments += ["-o", "preallocation=falloc"] }
        arguments += [path, "\(virtualSize)"]
        let (status, output) = try await run(arguments)
        guard status == 0 else { throw .createFailed(path: path, reason: output.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Runs `qemu-img` with `arguments`; returns its exit status and its output (stdout and stderr).
    static func run(_ arguments: [String]) async throws(DiskImageError) -> (Int32, String) {
        do { return try await ToolOutput.run("/usr/bin/qemu-img", arguments) } catch { throw .toolUnavailable(reason: error.reason) }
    }
}
