import Foundation

/// Runs a short-lived tool (`qemu-img`, `qemu-system-x86_64 --version`) to its end without
/// blocking a thread: its output goes to a private file, read once the process has ended, so
/// no thread waits on a pipe.
enum ToolOutput {
    /// Why the tool could not be run at all (its own failures are its exit status).
    struct LaunchError: Error {
        var reason: String
    }

    /// Runs `executable` with `arguments`; its exit status and its output (stdout and stderr).
    static func run(_ executable: String, _ arguments: [String]) async throws(LaunchError) -> (status: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "hostmesh-tool-\(UUID().uuidString).out"
        guard FileManager.default.createFile(atPath: outputPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let output = FileHandle(forWritingAtPath: outputPath) else {
            throw LaunchError(reason: "cannot create \(outputPath) for its output")
        }
        defer {
            try? output.close() // read below already; a close error loses nothing
            try? FileManager.default.removeItem(atPath: outputPath) // a leftover temporary file is harmless
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let ended: Result<Int32, LaunchError> = await withCheckedContinuation { done in
            process.terminationHandler = { ended in done.resume(returning: .success(ended.terminationStatus)) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                done.resume(returning: .failure(LaunchError(reason: "\(error)")))
            }
        }
        let status = try ended.get()
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" // no output to show: the status still says how it ended
        return (status, text)
    }
}
