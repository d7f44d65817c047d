import Foundation
public import Logging

/// What a host's QEMU can run, as its QMP says (`query-version`, `query-machines`,
/// `query-cpu-definitions`): what the pre-flight checklist compares between source and
/// destination before a migration (Protocol.md §6.9).
public struct QEMUCapabilities: Sendable, Equatable {
    /// A machine type, with the alias that names it (`q35` → `pc-q35-7.2`).
    public struct Machine: Sendable, Equatable {
        public var name: String
        public var alias: String?

        public init(name: String, alias: String? = nil) {
            self.name = name
            self.alias = alias
        }
    }

    /// A CPU model and the features it lacks under this host's accelerator (empty: usable).
    public struct CPUModel: Sendable, Equatable {
        public var name: String
        public var unavailableFeatures: [String]

        public init(name: String, unavailableFeatures: [String] = []) {
            self.name = name
            self.unavailableFeatures = unavailableFeatures
        }
    }

    /// QEMU's version, "major.minor.micro".
    public var version: String
    public var machines: [Machine]
    public var cpuModels: [CPUModel]

    public init(version: String, machines: [Machine], cpuModels: [CPUModel]) {
        self.version = version
        self.machines = machines
        self.cpuModels = cpuModels
    }

    /// The machine type `name` (a type or an alias) runs as with this QEMU; nil if it has none.
    public func resolve(machine name: String) -> String? {
        machines.first { $0.name == name }?.name ?? machines.first { $0.alias == name }?.name
    }

    /// Why a guest running machine type `machine` elsewhere (resolved, e.g. `pc-q35-7.2`) could
    /// not resume under this QEMU, with the fix; nil when it can. An alias is not enough: the same
    /// alias names a newer, incompatible type in a newer QEMU.
    public func machineRefusal(_ machine: String) -> (problem: String, fix: String)? {
        guard !machines.contains(where: { $0.name == machine }) else { return nil }
        return ("QEMU \(version) here has no machine type \(machine)",
                "install a QEMU here that has \(machine) (the source's), or restart the VM with a machine type both hosts have (`qemu-system-x86_64 -machine help`)")
    }

    /// Why CPU model `cpu` could not run here as it runs on a source whose QEMU cannot give it
    /// `sourceUnavailable` either, with the fix; nil when it can.
    public func cpuRefusal(_ cpu: String, sourceUnavailable: [String]) -> (problem: String, fix: String)? {
        guard let model = cpuModels.first(where: { $0.name == cpu }) else {
            return ("QEMU \(version) here has no CPU model \(cpu)",
                    "choose a CPU model both hosts have (`qemu-system-x86_64 -cpu help` lists them), or upgrade QEMU here")
        }
        let missing = model.unavailableFeatures.filter { !sourceUnavailable.contains($0) }
        guard missing.isEmpty else {
            return ("CPU model \(cpu) lacks \(missing.joined(separator: ", ")) here, which the source gives the guest",
                    "choose a CPU model whose features both hosts' CPUs and accelerators provide (e.g. qemu64)")
        }
        return nil
    }

    /// Reads them from `binary` by starting it with no machine (`-machine none -S`), asking over
    /// QMP and killing it: about 0.2 s. Throws when QEMU cannot be started or does not greet and
    /// negotiate within `budget` (each query after that has what is left of it). The budget is
    /// wide because a host busy with TCG guests can take seconds to start a QEMU: its monitor
    /// thread greets at once, but its main thread answers the first command only once initialised
    /// (a CI run saw `qmp_capabilities` unanswered for 5 s).
    ///
    /// A first QEMU that has not answered after `firstAttempt` is killed and a fresh one asked
    /// with what is left: one QEMU stuck in its start (a fresh clone's `make test` saw a probe's
    /// `qmp_capabilities` unanswered for the whole 30 s while the QEMUs of the tests around it
    /// started as usual; the cause is not known) must not refuse a migration that a second one
    /// would allow; a host too busy for either still fails, as before.
    public static func probe(binary: String, budget: Duration = .seconds(30), firstAttempt: Duration = .seconds(12),
                             logger: Logger) async throws -> QEMUCapabilities {
        let deadline = ContinuousClock.now + budget
        do {
            return try await probeOnce(binary: binary, budget: min(firstAttempt, budget), logger: logger)
        } catch let error as ProbeError where error.unanswered && deadline - ContinuousClock.now >= .seconds(1) {
            logger.warning("a QEMU started for the capability probe did not answer; asking a fresh one", metadata: ["error": "\(error)"])
            return try await probeOnce(binary: binary, budget: deadline - ContinuousClock.now, logger: logger)
        }
    }

    /// One QEMU asked, within `budget`.
    static func probeOnce(binary: String, budget: Duration, logger: Logger) async throws -> QEMUCapabilities {
        var template = Array("/tmp/hm-qemucaps-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ProbeError(reason: "cannot create a directory for the QEMU capability probe: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) } // best effort: a temp directory with one socket and a log
        let socket = directory + "/qmp.sock"
        let executable = try ChildProcess.resolve(binary: binary)
        let pid = try ChildProcess.spawn(executable: executable, arguments: [
            "-machine", "none", "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none", "-S",
            "-qmp", "unix:\(socket),server=on,wait=off",
        ], output: .init(path: directory + "/qemu.log"))
        do {
            // QEMU creates the socket file when it binds and accepts once it listens: until then a
            // connection is refused, so connecting is retried, not the file awaited.
            let deadline = ContinuousClock.now + budget
            var qmp: QMPClient?
            while qmp == nil {
                var patient = QMPClient.Configuration()
                patient.connectTimeout = max(.seconds(1), deadline - ContinuousClock.now)
                patient.commandTimeout = patient.connectTimeout
                do { qmp = try await QMPClient.connect(path: socket, configuration: patient, logger: logger) } catch {
                    let exited = ChildProcess.reap(pid) != nil
                    guard ContinuousClock.now < deadline, !exited else {
                        // What it was doing and what it said, read before its directory goes: the
                        // only clues to a QEMU that hangs in its start.
                        let log = ((try? String(contentsOfFile: directory + "/qemu.log", encoding: .utf8)) ?? "") // none written: nothing to add
                            .split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
                        throw ProbeError(reason: "QEMU (\(executable)) did not answer on its QMP socket for the capability probe within \(budget): \(error)"
                                             + (exited ? "" : " (its threads then: \(threadStates(pid)))") + (log.isEmpty ? "" : "; its log: \(log)"),
                                         unanswered: !exited)
                    }
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            guard let qmp else { throw ProbeError(reason: "no QMP connection") }
            let capabilities = try await query(qmp)
            await qmp.close()
            await ChildProcess.killAndReap(pid)
            return capabilities
        } catch {
            await ChildProcess.killAndReap(pid)
            throw error
        }
    }

    /// Each thread of `pid` as "name state wchan" (`/proc`; R running, S sleeping, D waiting on
    /// I/O), for a QEMU that does not answer.
    static func threadStates(_ pid: pid_t) -> String {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? [] // gone meanwhile: no threads to show
        return tasks.sorted { (Int($0) ?? 0) < (Int($1) ?? 0) }.prefix(16).map { tid in
            let base = "/proc/\(pid)/task/\(tid)/"
            let name = ((try? String(contentsOfFile: base + "comm", encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines) // gone meanwhile: "?"
            let stat = (try? String(contentsOfFile: base + "stat", encoding: .utf8)) ?? "" // gone meanwhile: state "?"
            let state = stat.lastIndex(of: ")").map { String(stat[$0...].dropFirst(2).prefix(1)) } ?? "?"
            let wchan = (try? String(contentsOfFile: base + "wchan", encoding: .utf8)) ?? "?" // gone meanwhile: "?"
            return "\(name) \(state) \(wchan)"
        }.joined(separator: ", ")
    }

    /// Why the probe failed.
    public struct ProbeError: Error, CustomStringConvertible {
        public var reason: String
        /// The QEMU started but did not answer in time (not: it exited, or could not start).
        public var unanswered = false
        public var description: String { reason }
    }

    /// Reads them over `qmp` (a running VM's QEMU, or the probe's).
    public static func query(_ qmp: QMPClient) async throws -> QEMUCapabilities {
        struct Version: Decodable {
            struct Numbers: Decodable { var major: Int; var minor: Int; var micro: Int }
            var qemu: Numbers
        }
        struct MachineInfo: Decodable { var name: String; var alias: String? }
        struct CPUInfo: Decodable {
            var name: String
            var unavailableFeatures: [String]?
            enum CodingKeys: String, CodingKey {
                case name
                case unavailableFeatures = "unavailable-features"
            }
        }
        let version = try await qmp.execute("query-version", returning: Version.self)
        let machines = try await qmp.execute("query-machines", returning: [MachineInfo].self)
        let cpus = try await qmp.execute("query-cpu-definitions", returning: [CPUInfo].self)
        return QEMUCapabilities(version: "\(version.qemu.major).\(version.qemu.minor).\(version.qemu.micro)",
                                machines: machines.map { Machine(name: $0.name, alias: $0.alias) },
                                cpuModels: cpus.map { CPUModel(name: $0.name, unavailableFeatures: $0.unavailableFeatures ?? []) })
    }
}
