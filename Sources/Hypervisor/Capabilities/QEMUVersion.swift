import Foundation
import Synchronization

/// A QEMU release, as `qemu-system-x86_64 --version` prints it ("QEMU emulator version 10.0.2
/// (Debian 1:10.0.2+ds-2…)"). Read from the binary before it starts a guest, because the guest's
/// RAM size depends on it (`GuestRAM`).
public struct QEMUVersion: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var micro: Int

    public init(major: Int, minor: Int, micro: Int = 0) {
        self.major = major
        self.minor = minor
        self.micro = micro
    }

    /// Parses the first line of `--version` output; nil when it has no "version X.Y[.Z]".
    public init?(versionOutput: String) {
        guard let line = versionOutput.split(whereSeparator: \.isNewline).first,
              let range = line.range(of: "version ") else { return nil }
        let numbers = line[range.upperBound...].prefix { $0.isNumber || $0 == "." }.split(separator: ".").compactMap { Int($0) }
        guard numbers.count >= 2 else { return nil }
        self.init(major: numbers[0], minor: numbers[1], micro: numbers.count > 2 ? numbers[2] : 0)
    }

    public static func < (a: QEMUVersion, b: QEMUVersion) -> Bool {
        (a.major, a.minor, a.micro) < (b.major, b.minor, b.micro)
    }

    public var description: String { "\(major).\(minor).\(micro)" }

    /// Why a version could not be read.
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        public var binary: String
        public var reason: String
        public var description: String {
            "cannot read the version of QEMU (\(binary)): \(reason); check that `\(binary) --version` runs, or reinstall `qemu-system-x86`"
        }
    }

    /// Versions already read, by binary and its identity on disk: an upgrade in place (a new
    /// inode or modification time) is read again, so a replaced binary never gets the old one's
    /// RAM layout.
    private static let cache = Mutex<[String: QEMUVersion]>([:])

    /// The version of `binary` (a resolved path), read once per binary file (about 20 ms).
    public static func of(binary: String) async throws(ReadError) -> QEMUVersion {
        var status = stat()
        guard stat(binary, &status) == 0 else {
            throw ReadError(binary: binary, reason: String(cString: strerror(errno)))
        }
        let key = "\(binary)|\(status.st_ino)|\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)"
        if let known = cache.withLock({ $0[key] }) { return known }
        let output = try await run(binary)
        guard let version = QEMUVersion(versionOutput: output) else {
            throw ReadError(binary: binary, reason: "its --version printed \"\(output.prefix(120))\"")
        }
        cache.withLock { $0[key] = version }
        return version
    }

    /// Runs `binary --version`; its output once it has ended.
    private static func run(_ binary: String) async throws(ReadError) -> String {
        let ran: (status: Int32, output: String)
        do { ran = try await ToolOutput.run(binary, ["--version"]) } catch { throw ReadError(binary: binary, reason: error.reason) }
        guard ran.status == 0 else { throw ReadError(binary: binary, reason: "it exited with status \(ran.status): \(ran.output.prefix(200))") }
        return ran.output
    }
}
