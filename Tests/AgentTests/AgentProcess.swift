import Agent
import ControlAPI
import Foundation
import MeshIdentity

/// A throwaway mesh for end-to-end tests: one domain, certified hosts, real `hostmesh agent`
/// processes on loopback or across a `Lab`, and cleanup that kills every process (agents and their QEMUs) whose
/// command line mentions the mesh's directory.
final class TestMesh: @unchecked Sendable {
    // @unchecked Sendable is safe: `agents` is only touched from the test's own task.
    let root: String
    let domain: DomainAuthority
    /// The lab whose hosts `start(_:on:)` runs agents on (nil: everything on loopback).
    let lab: Lab?
    private var agents: [AgentProcess] = []
    /// The lab host each agent started on (absent: loopback), so a restart brings it back there.
    private var labHosts: [String: Int] = [:]

    /// A mesh on loopback, or across `lab` (which it tears down with itself).
    init(lab: Lab? = nil) throws {
        root = NSTemporaryDirectory() + "hm-e2e-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        domain = try DomainAuthority(name: "lab")
        self.lab = lab
    }

    /// Creates a host's state directory (key, certificate, trust) without starting it.
    func host(_ id: String) throws -> String {
        let dir = root + "/" + id
        try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
        let identity = try HostIdentity(hostID: id)
        try identity.save(inDirectory: dir)
        let now = Int64(Date().timeIntervalSince1970)
        try domain.certify(identity.publicKeys, serial: UInt64(agents.count + 1), notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
        try domain.trustAnchor.save(dir + "/trust/lab.pub")
        return dir
    }

    /// Starts `hostmesh agent` for a host directory made by `host(_:)`: on loopback, or with
    /// `labHost` inside that host of the lab (wildcard listeners, no --advertise).
    /// `environment` adds variables (the fault-injection hooks) to the agent's environment.
    /// `wrapper` runs the agent through another command (e.g. `unshare … sh -c '…; exec "$@"'`), which must exec it.
    func start(_ id: String, on labHost: Int? = nil, arguments: [String] = [], environment: [String: String] = [:],
               wrapper: [String] = []) async throws -> AgentProcess {
        let dir = root + "/" + id
        if !FileManager.default.fileExists(atPath: dir) { _ = try host(id) }
        // A lab host without a lab is a mistake in the test itself.
        precondition(labHost == nil || lab != nil, "start(_:on:) needs a TestMesh made with a lab")
        let namespace = labHost.flatMap { lab?.namespace($0) }
        labHosts[id] = labHost
        let agent = try await AgentProcess.start(hostID: id, stateDirectory: dir, arguments: arguments, environment: environment,
                                                 namespace: namespace, wrapper: wrapper)
        agents.append(agent)
        return agent
    }

    /// Starts an agent whose certificate comes from another domain, which this mesh does not
    /// trust (it trusts its own domain and this mesh's, so it can dial in).
    func startForeign(_ id: String) async throws -> AgentProcess {
        let dir = root + "/" + id
        try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
        let other = try DomainAuthority(name: "elsewhere")
        let identity = try HostIdentity(hostID: id)
        try identity.save(inDirectory: dir)
        let now = Int64(Date().timeIntervalSince1970)
        try other.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
        try other.trustAnchor.save(dir + "/trust/elsewhere.pub")
        try domain.trustAnchor.save(dir + "/trust/lab.pub")
        let agent = try await AgentProcess.start(hostID: id, stateDirectory: dir, arguments: [])
        agents.append(agent)
        return agent
    }

    /// Starts an agent of another domain, certified by `authority` and trusting only it, in
    /// directory `name` under this mesh's root (so its host id may equal one of this mesh's).
    /// Started again from an existing directory, it keeps its key and certificate.
    func start(_ hostID: String, of authority: DomainAuthority, directory name: String, arguments: [String] = [],
               environment: [String: String] = [:]) async throws -> AgentProcess {
        let dir = root + "/" + name
        if !FileManager.default.fileExists(atPath: dir + "/host.cert") {
            try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
            let identity = try HostIdentity(hostID: hostID)
            try identity.save(inDirectory: dir)
            let now = Int64(Date().timeIntervalSince1970)
            try authority.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
            try authority.trustAnchor.save(dir + "/trust/\(authority.name).pub")
        }
        let agent = try await AgentProcess.start(hostID: hostID, stateDirectory: dir, arguments: arguments, environment: environment)
        agents.append(agent)
        return agent
    }

    /// Kills everything this mesh started and removes its files.
    func tearDown() {
        for agent in agents { agent.kill() }
        killProcesses(mentioning: root)
        lab?.tearDown()
        try? FileManager.default.removeItem(atPath: root)
    }

    deinit { tearDown() }
}

/// SIGKILLs every process whose command line contains `text` (QEMUs outlive their agent by design).
func killProcesses(mentioning text: String) {
    for pid in pids(ofProcessesMentioning: text) { kill(pid, SIGKILL) }
}

/// Starts `path` with `arguments`, stdout and stderr appended to `logPath`. posix_spawn, not
/// Foundation's Process: Process changes how this whole test process handles SIGCHLD, and then
/// the QEMUs other tests start are reaped behind their supervisors' backs.
func spawn(_ path: String, _ arguments: [String], logPath: String, environment: [String: String] = [:]) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var merged = ProcessInfo.processInfo.environment
    merged.merge(environment) { _, new in new }
    // An agent started here ends itself and its QEMUs if this test process dies without a teardown.
    merged["HOSTMESH_TEST_PARENT_PID"] = "\(getpid())"
    let envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { envp.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw ControlError.failed("cannot start \(path): \(String(cString: strerror(rc)))") }
    return pid
}

/// One `hostmesh agent` process.
final class AgentProcess: @unchecked Sendable {
    // @unchecked Sendable is safe: all stored properties are immutable after init.
    let hostID: String
    let stateDirectory: String
    /// The host the agent says others reach it at (127.0.0.1 on loopback; in a lab, the address
    /// its wildcard listeners advertise).
    let host: String
    let port: Int
    let pid: pid_t
    let logPath: String

    /// True until the process has exited (reaps it once it has).
    var isRunning: Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    var address: String { "\(host):\(port)" }
    var control: ControlClient { ControlClient(path: StateDirectory(stateDirectory).controlSocket) }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits (bounded) until the log holds every one of `texts`: a line written just after the
    /// state a test waits for. True when they all came.
    func logged(_ texts: String..., within: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now + within
        while true {
            let log = self.log
            if texts.allSatisfy(log.contains) { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(50)) // cancelled: the wait ends at its deadline
        }
    }

    private init(hostID: String, stateDirectory: String, host: String, port: Int, pid: pid_t, logPath: String) {
        self.hostID = hostID
        self.stateDirectory = stateDirectory
        self.host = host
        self.port = port
        self.pid = pid
        self.logPath = logPath
    }

    /// The `hostmesh` binary next to the test bundle (SwiftPM builds both into one directory).
    static var binary: String {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [here, here.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("hostmesh").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return here.appendingPathComponent("hostmesh").path
    }

    /// Starts an agent on loopback (every listener on 127.0.0.1, ports chosen by the kernel), or,
    /// with `namespace`, inside that network namespace (`ip netns exec`, which execs the agent, so
    /// `pid` is the agent's) with the default wildcard listeners and no --advertise: the agent
    /// finds its address as it would on a real host. The control socket is a unix socket in the
    /// state directory, reachable from any namespace.
    static func start(hostID: String, stateDirectory: String, arguments: [String], environment: [String: String] = [:],
                      namespace: String? = nil, wrapper: [String] = []) async throws -> AgentProcess {
        let logPath = stateDirectory + "/agent.log"
        // A restarted agent gets a fresh log (the old one is kept), so the readiness check below
        // cannot read the previous run's address.
        if FileManager.default.fileExists(atPath: logPath) {
            try? FileManager.default.removeItem(atPath: logPath + ".previous")
            try? FileManager.default.moveItem(atPath: logPath, toPath: logPath + ".previous")
        }
        let agent = ["agent", "--state-dir", stateDirectory, "--log-level", "debug"]
        let pid: pid_t
        if let namespace {
            pid = try spawn(Lab.ip, ["netns", "exec", namespace, binary] + agent + arguments, logPath: logPath, environment: environment)
        } else if let command = wrapper.first {
            pid = try spawn(command, Array(wrapper.dropFirst()) + [binary] + agent
                                + ["--listen", "127.0.0.1:0", "--overlay", "127.0.0.1:0", "--gossip", "127.0.0.1:0"] + arguments,
                            logPath: logPath, environment: environment)
        } else {
            pid = try spawn(binary, agent + ["--listen", "127.0.0.1:0", "--overlay", "127.0.0.1:0", "--gossip", "127.0.0.1:0"] + arguments,
                            logPath: logPath, environment: environment)
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            // "mesh.listen=HOST:PORT" (or "mesh.listen":"HOST:PORT" in JSON logs): the channel address the agent advertises.
            if let range = log.range(of: #""mesh.listen":""#), let end = log[range.upperBound...].firstIndex(of: "\""),
               let colon = log[range.upperBound..<end].lastIndex(of: ":"), let port = Int(log[log.index(after: colon)..<end]) {
                return AgentProcess(hostID: hostID, stateDirectory: stateDirectory, host: String(log[range.upperBound..<colon]), port: port,
                                    pid: pid, logPath: logPath)
            }
            if let range = log.range(of: "mesh.listen=") {
                let value = log[range.upperBound...].prefix { !$0.isWhitespace }
                // Only a value followed by more of the line is whole (the log may be mid-write).
                if value.endIndex < log.endIndex, let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) {
                    return AgentProcess(hostID: hostID, stateDirectory: stateDirectory, host: String(value[..<colon]), port: port,
                                        pid: pid, logPath: logPath)
                }
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) != 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        Foundation.kill(pid, SIGKILL)
        throw ControlError.failed("agent \(hostID) did not start: \((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
    }

    func kill() {
        guard isRunning else { return }
        Foundation.kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}

/// Reads a test guest's heartbeat lines: (boot id prefix, counter) pairs, in order.
func heartbeats(_ console: String) -> [(String, Int)] {
    console.split(whereSeparator: \.isNewline).compactMap { line in
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[0] == "HB", let n = Int(parts[2]) else { return nil }
        return (String(parts[1]), n)
    }
}

/// The test guest, built by `make guest` (Deploy/guest/build-guest.sh) before the suite runs.
enum TestGuest {
    static var directory: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Deploy/out/guest").path
    }
    static var kernel: String { directory + "/kernel" }
    static var initrd: String { directory + "/initrd.img" }
    static var available: Bool { FileManager.default.fileExists(atPath: kernel) && FileManager.default.fileExists(atPath: initrd) }
}

// MARK: - Fault injection

extension TestMesh {
    /// Restarts a host's agent (SIGKILL first if it still runs) on the same channel port, with
    /// the same state directory: the agent a real host would run again after a crash. A lab
    /// host's agent comes back in its namespace, on the default listeners it started with.
    func restart(_ agent: AgentProcess, arguments: [String] = [], environment: [String: String] = [:]) async throws -> AgentProcess {
        agent.kill()
        if let labHost = labHosts[agent.hostID] {
            return try await start(agent.hostID, on: labHost, arguments: arguments, environment: environment)
        }
        // The last --listen wins over the harness's default.
        return try await start(agent.hostID, arguments: arguments + ["--listen", agent.address], environment: environment)
    }
}

/// Pids of live processes whose command line contains `text` (e.g. one VM's runtime directory).
func pids(ofProcessesMentioning text: String) -> [pid_t] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry -> pid_t? in
        guard let pid = Int32(entry), pid != getpid(),
              let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
              let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              !stat.contains(") Z ") // a zombie is dead: it only waits for its parent to reap it
        else { return nil }
        return String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text) ? pid : nil
    }
}

/// Runs a tool to completion; returns its exit status and its output (stdout and stderr).
func runTool(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "hm-tool-" + UUID().uuidString.prefix(8).lowercased()
    defer { try? FileManager.default.removeItem(atPath: log) }
    let pid = try spawn(path, arguments, logPath: log, environment: environment)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exited = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exited, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

/// Cuts every established TCP connection to or from `port` on loopback, both ends at once
/// (`ss -K`, the kernel's socket destroy): what a network cut looks like to both agents. New
/// connections work again right away (the partition heals), as they would after a link flap.
/// Across a lab, `host` is the address the port is on and the cut is made in each of
/// `namespaces` (sockets live in their own host's namespace).
func cutConnections(port: Int, host: String? = nil, namespaces: [String] = []) throws {
    let places: [String?] = namespaces.isEmpty ? [nil] : namespaces
    func ss(_ namespace: String?, _ arguments: [String]) throws -> String {
        guard let namespace else { return try runTool("/usr/bin/ss", arguments).output }
        return try runTool(Lab.ip, ["netns", "exec", namespace, "/usr/bin/ss"] + arguments).output
    }
    // One side of the connections: to the port (dport/dst) or from it (sport/src).
    func side(_ local: Bool) -> [String] {
        guard let host else { return [local ? "sport" : "dport", "=", ":\(port)"] }
        return [local ? "src" : "dst", "\(host):\(port)"]
    }
    // The connections to cut are those established now; agents may open new ones at any moment
    // (a retry, a broadcast), and those are not part of the cut.
    func established() throws -> Set<String> {
        var found = Set<String>()
        for place in places {
            let output = try ss(place, ["-H", "-n", "-t", "state", "established", "("] + side(false) + ["or"] + side(true) + [")"])
            found.formUnion(output.split(whereSeparator: \.isNewline).map { (place ?? "") + " " + $0.split(separator: " ").suffix(2).joined(separator: " ") })
        }
        return found
    }
    let before = try established()
    var left = before
    for _ in 0..<3 where !left.isEmpty {
        for place in places {
            for local in [false, true] {
                // ss prints "RTNETLINK answers: Invalid argument" for sockets it may not destroy and
                // still destroys the rest; what counts is that none is left.
                _ = try ss(place, ["-K", "-t", "state", "established", "("] + side(local) + [")"])
            }
        }
        left = try established().intersection(before)
    }
    guard left.isEmpty else {
        throw ControlError.failed("ss -K left connections on port \(port) (kernel without CONFIG_INET_DIAG_DESTROY?): \(left.sorted())")
    }
}
