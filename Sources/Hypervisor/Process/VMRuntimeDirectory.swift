public import Foundation

/// The per-VM directory holding a running QEMU's runtime state. Everything a fresh supervisor
/// needs to re-adopt the QEMU is in here, so the agent only has to remember the path.
///
/// Files: `qmp.sock` (QMP), `console.log` (guest serial console), `qemu.pid` (written by QEMU),
/// `qemu.log` (QEMU's stdout/stderr), `runtime.json` (`VMRuntimeRecord`), `incoming.sock`
/// (default listening socket for an incoming migration).
public struct VMRuntimeDirectory: Sendable, Equatable, Codable {
    /// Absolute path of the directory.
    public let path: String

    /// A runtime directory at `path` (created by `prepare()`).
    public init(path: String) {
        self.path = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    }

    /// QMP socket.
    public var qmpSocket: String { path + "/qmp.sock" }
    /// Guest serial console output.
    public var consoleLog: String { path + "/console.log" }
    /// QEMU's pid file.
    public var pidFile: String { path + "/qemu.pid" }
    /// QEMU's own stdout and stderr.
    public var qemuLog: String { path + "/qemu.log" }
    /// The runtime record (`VMRuntimeRecord` as JSON).
    public var recordFile: String { path + "/runtime.json" }
    /// Default unix socket for an incoming migration stream.
    public var incomingSocket: String { path + "/incoming.sock" }

    /// Creates the directory (mode 0700) and checks that its sockets fit in `sun_path`.
    public func prepare() throws(HypervisorError) {
        // QEMU's option syntax would split a path at a comma; refuse instead of escaping twice.
        guard !path.contains(","), path.hasPrefix("/") else {
            throw .runtimeDirectory(path: path, reason: "it must be an absolute path without commas")
        }
        for socket in [qmpSocket, incomingSocket] where socket.utf8.count > 107 {
            throw .socketPathTooLong(path: socket)
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .runtimeDirectory(path: path, reason: "\(error.localizedDescription)")
        }
    }

    /// The guest's serial console so far (empty if none yet).
    public func readConsole() -> String {
        (try? String(contentsOfFile: consoleLog, encoding: .utf8)) ?? "" // for display: "none yet", as documented
    }

    /// The last `count` non-empty lines of QEMU's own log.
    public func qemuLogTail(_ count: Int = 10) -> [String] {
        guard let data = FileManager.default.contents(atPath: qemuLog) else { return [] }
        let text = String(decoding: data.suffix(16 << 10), as: UTF8.self)
        return Array(text.split(whereSeparator: \.isNewline).map(String.init).suffix(count))
    }

    /// The pid QEMU wrote, if the file exists and holds a number.
    public func readPid() -> Int32? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8) else { return nil } // no readable pid: nil, as documented
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// What the agent persists about a running VM (and what `runtime.json` holds): enough to find,
/// verify and re-adopt its QEMU after an agent restart.
public struct VMRuntimeRecord: Codable, Sendable, Equatable {
    /// How QEMU was started.
    public enum Mode: String, Codable, Sendable {
        /// A normal boot.
        case boot
        /// Waiting for an incoming migration (`-incoming defer`).
        case incoming
    }

    /// The spec QEMU was started from.
    public var spec: VMSpec
    /// The runtime directory.
    public var directory: VMRuntimeDirectory
    /// QEMU's pid.
    public var pid: Int32
    /// The QEMU binary.
    public var binary: String
    /// The accelerator in use, and why.
    public var accelerator: AcceleratorVerdict
    /// How QEMU was started.
    public var mode: Mode
    /// When QEMU was started.
    public var startedAt: Date
    /// The full argv, for diagnostics.
    public var arguments: [String]
    /// The guest's RAM in KiB as QEMU was given it (`GuestRAM`); nil in a record written before
    /// it was kept (`guestRAMKiB` then reads QEMU's argv).
    public var memoryKiB: Int?

    /// The guest's RAM in KiB: what a migration destination must give it too. From an older
    /// record, QEMU's own `-m` (what it runs with), and only without one the rule that agent followed.
    public var guestRAMKiB: Int {
        memoryKiB ?? GuestRAM.kib(inArguments: arguments)
            ?? GuestRAM.legacyKiB(memoryMiB: spec.memoryMiB, accelerator: accelerator.choice)
    }
}
