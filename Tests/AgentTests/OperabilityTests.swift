@testable import Agent
import ControlAPI
import Foundation
import Synchronization
import Testing

/// Issue 16 item 3: the systemd unit, `make install`, the shipped configuration, SIGHUP reload.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct OperabilityTests {
    /// The repository's root (this file is Tests/AgentTests/OperabilityTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs `path` with `arguments`; its exit status and output (stdout and stderr).
    func run(_ path: String, _ arguments: [String], in directory: String) async throws -> (Int32, String) {
        let log = directory + "/run-\(UUID().uuidString.prefix(8)).log"
        let pid = try spawn(path, arguments, logPath: log)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        let exited = status & 0x7f == 0
        return (exited ? (status >> 8) & 0xff : -1, output)
    }

    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed (Debian's systemd package has it)"))
    func makeInstallPutsTheFilesInPlaceAndTheUnitPassesSystemdAnalyzeVerify() async throws {
        let stage = NSTemporaryDirectory() + "hm-install-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: stage, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let (status, output) = try await run("/usr/bin/make", ["-C", Self.root, "--no-print-directory", "install-files",
                                                                "BIN=\(AgentProcess.binary)", "DESTDIR=\(stage)"], in: stage)
        #expect(status == 0, "\(output)")
        let files = FileManager.default
        #expect(files.isExecutableFile(atPath: stage + "/usr/local/bin/hostmesh"))
        let unitPath = stage + "/etc/systemd/system/hostmesh.service"
        let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/hostmesh agent --config /etc/hostmesh/hostmesh.toml"))
        #expect(unit.contains("KillMode=process"), "the VMs' QEMUs must outlive a stopped agent")
        #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        // Shell completions generated from the binary: bash parses its script, and every script
        // offers the subcommands.
        let bash = stage + "/usr/local/share/bash-completion/completions/hostmesh"
        for path in [bash, stage + "/usr/local/share/zsh/site-functions/_hostmesh", stage + "/usr/local/share/fish/vendor_completions.d/hostmesh.fish"] {
            let script = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            #expect(script.contains("migrate") && script.contains("maintenance"), "\(path): \(script.prefix(300))")
        }
        let (parsed, parseOutput) = try await run("/bin/bash", ["-n", bash], in: stage)
        #expect(parsed == 0, "\(parseOutput)")
        let config = stage + "/etc/hostmesh/hostmesh.toml"
        #expect(files.fileExists(atPath: config))
        let mode = try files.attributesOfItem(atPath: stage + "/var/lib/hostmesh")[.posixPermissions] as? Int
        #expect(mode == 0o700)
        // The installed configuration loads as the agent would read it.
        _ = try AgentConfiguration(tomlFile: config)
        // A second install keeps an edited configuration.
        try "log_level = \"debug\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (again, againOutput) = try await run("/usr/bin/make", ["-C", Self.root, "--no-print-directory", "install-files",
                                                                    "BIN=\(AgentProcess.binary)", "DESTDIR=\(stage)"], in: stage)
        #expect(again == 0 && againOutput.contains("kept the existing"), "\(againOutput)")
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "log_level = \"debug\"\n")

        // systemd-analyze checks the binary exists: verify the installed unit with the staged binary's path.
        let checked = stage + "/hostmesh.service"
        try unit.replacingOccurrences(of: "/usr/local/bin/hostmesh", with: stage + "/usr/local/bin/hostmesh").write(toFile: checked, atomically: true, encoding: .utf8)
        let (verified, verifyOutput) = try await run(Self.systemdAnalyze!, ["verify", checked], in: stage)
        #expect(verified == 0, "\(verifyOutput)")
        // Unknown keys and bad values are only warnings to systemd-analyze: any output is a failure here.
        #expect(verifyOutput.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(verifyOutput)")
        // And the check can fail: a misspelt key is reported.
        try unit.replacingOccurrences(of: "/usr/local/bin/hostmesh", with: stage + "/usr/local/bin/hostmesh")
            .replacingOccurrences(of: "ProtectHome=", with: "ProtectHomeDir=").write(toFile: checked, atomically: true, encoding: .utf8)
        let (_, misspelt) = try await run(Self.systemdAnalyze!, ["verify", checked], in: stage)
        #expect(misspelt.contains("ProtectHomeDir"), "\(misspelt)")
    }

    @Test func theShippedConfigurationNamesEveryKeyAndLoads() throws {
        let path = Self.root + "/Deploy/etc/hostmesh.toml"
        let configuration = try AgentConfiguration(tomlFile: path)
        #expect(configuration.metricsListen == nil, "metrics are off by default")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for key in AgentConfiguration.CodingKeys.allCases.map(\.rawValue) {
            #expect(text.contains("\(key) =") || text.contains("[\(key)]"), "Deploy/etc/hostmesh.toml does not mention \(key)")
        }
        // Every commented key, uncommented, is valid as shown (its default or an example).
        let uncommented = text.split(separator: "\n").map { line in
            line.hasPrefix("#") && line.dropFirst().first.map({ $0.isLetter || $0 == "[" }) == true ? String(line.dropFirst()) : String(line)
        }.joined(separator: "\n")
        let all = NSTemporaryDirectory() + "hm-all-keys-\(UUID().uuidString.prefix(8)).toml"
        try uncommented.write(toFile: all, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: all) }
        let every = try AgentConfiguration(tomlFile: all)
        #expect(every.metricsListen == (try HostPort(parsing: "127.0.0.1:9464")))
    }

    @Test func sighupReloadsTheMigrationLimitsAndRefusesABadFile() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        _ = try mesh.host("node-a")
        let config = mesh.root + "/node-a.toml"
        try "max_outgoing_migrations = 1\n".write(toFile: config, atomically: true, encoding: .utf8)
        let a = try await mesh.start("node-a", arguments: ["--config", config])
        try "max_outgoing_migrations = 3\nmax_incoming_migrations = 2\ndrs_hold = 10\nstream_congestion_control = \"system\"\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        kill(a.pid, SIGHUP)
        try await waitForLog(a, "configuration reloaded")
        let reloaded = a.log
        #expect(reloaded.contains("migration.outgoing_max=3") && reloaded.contains("migration.incoming_max=2"), "\(reloaded.suffix(1500))")
        #expect(reloaded.contains("config.restart_needed=drs_hold"), "\(reloaded.suffix(1500))")
        #expect(reloaded.contains("migration.stream_congestion_control=system"), "\(reloaded.suffix(1500))")
        try "max_outgoing_migrations = 0\n".write(toFile: config, atomically: true, encoding: .utf8)
        kill(a.pid, SIGHUP)
        try await waitForLog(a, "configuration not reloaded")
        #expect(a.log.contains("max_outgoing_migrations = 0"), "\(a.log.suffix(1500))")
        // Still serving, with the limits of the last good file.
        #expect(a.isRunning)
        _ = try await a.control.call("status", Empty(), as: ControlTypes.Status.self)
    }

    /// A congestion control the kernel refuses (`stream_congestion_control`, Protocol.md §6.11)
    /// is said when the agent starts, with the fix; the agent runs on (its streams keep the
    /// system's).
    @Test func aRefusedStreamCongestionControlIsSaidAtStart() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        _ = try mesh.host("node-a")
        let a = try await mesh.start("node-a", arguments: ["--stream-congestion-control", "nosuch_cc"])
        try await waitForLog(a, "the kernel refuses the one configured")
        #expect(a.log.contains("migration.stream_congestion_control=nosuch_cc") && a.log.contains("modprobe tcp_nosuch_cc"), "\(a.log.suffix(1500))")
        _ = try await a.control.call("status", Empty(), as: ControlTypes.Status.self)
    }

    /// `--log-format json`: every line the agent writes is one JSON object with the fixed
    /// fields, its metadata beside them (what a log collector ingests without a parser).
    @Test func jsonLogsAreOneObjectPerLine() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        _ = try mesh.host("node-a")
        let a = try await mesh.start("node-a", arguments: ["--log-format", "json"])
        _ = try await a.control.call("status", Empty(), as: ControlTypes.Status.self)
        let lines = a.log.split(whereSeparator: \.isNewline)
        #expect(!lines.isEmpty, "no JSON line in \(a.log.suffix(1500))")
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["ts"] is String && object["level"] is String && object["msg"] is String && object["logger"] is String, "\(line)")
        }
        #expect(lines.contains { $0.contains(#""mesh.host":"node-a""#) }, "\(lines.prefix(5))")
    }

    /// `hostmesh events` (method `events`): a subscriber on one agent sees another member join,
    /// and then die when it is killed, as stream lines that keep coming until it goes away.
    @Test func eventsStreamMembersComingAndGoing() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        _ = try mesh.host("node-a")
        _ = try mesh.host("node-b")
        let a = try await mesh.start("node-a")
        final class Seen: Sendable {
            let events = Mutex<[AgentEvent]>([])
            func withLock<T>(_ body: (inout [AgentEvent]) -> T) -> T { events.withLock { body(&$0) } }
        }
        let seen = Seen()
        struct Line: Decodable { var progress: AgentEvent }
        let subscriber = Task {
            _ = try? await a.control.call("events", Empty(), as: Empty.self) { line in
                if let event = try? JSONDecoder().decode(Line.self, from: line).progress { seen.withLock { $0.append(event) } }
            }
        }
        defer { subscriber.cancel() }
        func waitFor(_ kind: String, peer: String? = "node-b") async -> Bool {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if seen.withLock({ $0.contains { $0.kind == kind && $0.peer == peer } }) { return true }
                try? await Task.sleep(for: .milliseconds(50)) // cancelled: the loop ends at its deadline
            }
            return false
        }
        // The subscription says when it is in place: nothing after that is missed.
        #expect(await waitFor("subscribed", peer: nil), "\(seen.withLock { $0 })")
        let b = try await mesh.start("node-b", arguments: ["--join", a.address])
        #expect(await waitFor("member.alive"), "\(seen.withLock { $0 })")
        b.kill()
        #expect(await waitFor("member.dead"), "\(seen.withLock { $0 })")
        let first = try #require(seen.withLock { $0.first })
        #expect(first.kind == "subscribed" && first.host == "node-a" && first.time.hasSuffix("Z"), "\(first)")
    }

    func waitForLog(_ agent: AgentProcess, _ text: String) async throws {
        guard await agent.logged(text) else { throw ControlError.failed("\(agent.hostID) never logged \(text):\n\(agent.log.suffix(2000))") }
    }
}
