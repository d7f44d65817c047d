import Agent
import ControlAPI
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hypervisor
import Synchronization
import Testing

/// Issue 16, what a fleet's tooling reads: per-VM CPU, memory and network and the DRS figures on
/// the real `/metrics` of an agent running a real guest; `--json` on the commands that print,
/// each parsed; `hostmesh events --json --progress` and the dashboard's event stream following a
/// migration started from the command line, not from the page.
@Suite(.serialized, .timeLimit(.minutes(3)), .enabled(if: TestGuest.available, "build the test guest first: make guest"))
struct FleetOperabilityTests {
    func spec(_ name: String, ip: String? = nil, work: String) -> VMSpec {
        let id = UUID().uuidString.lowercased()
        let hex = Array(id.filter(\.isHexDigit).prefix(6))
        let mac = "52:54:00:" + stride(from: 0, to: 6, by: 2).map { String(hex[$0..<($0 + 2)]) }.joined(separator: ":")
        return VMSpec(id: id, name: name, memoryMiB: 128,
                      nics: ip.map { [VMSpec.NIC(id: "net0", mac: mac, attachment: .none, network: "default", addresses: [$0 + "/32"])] } ?? [],
                      boot: .kernel(path: TestGuest.kernel, initrd: TestGuest.initrd, commandLine: "console=ttyS0 quiet"),
                      accelerator: .tcg, extraKernelArguments: ["hm.work=\(work)"] + (ip.map { ["hm.ip=\($0)/24"] } ?? []))
    }

    // MARK: - Per-VM and DRS metrics

    @Test func perVMCPUMemoryNetworkAndDRSFiguresAreOnTheRealEndpoint() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--metrics-listen", "127.0.0.1:0"])
        let endpoint = "http://" + (try PrometheusScrapeTests().metricsAddress(a)) + "/metrics"
        // It pings an address nobody has: its ARP requests go through its switch port.
        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("web", ip: "10.77.0.2", work: "heartbeat,ping:10.77.0.9"), start: true),
                                     as: VMInfo.self)
        _ = try await MigrationEndToEndTests().heartbeat(a, "web", after: 1)
        let pid = try #require(try await a.control.call("vm.list", Empty(), as: [VMInfo].self).first?.pid)
        #expect((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.contains("qemu") == true, "pid \(pid) is not a QEMU")

        let first = try await Scrape.read(endpoint)
        let user = try #require(first.value("hostmesh_vm_cpu_seconds_total", ["vm": "web", "mode": "user"]), "\(first.text.prefix(3000))")
        let system = try #require(first.value("hostmesh_vm_cpu_seconds_total", ["vm": "web", "mode": "system"]))
        let resident = try #require(first.value("hostmesh_vm_resident_memory_bytes", ["vm": "web"]))
        // What the kernel says of that QEMU right after the scrape: the CPU time is at most that
        // (it only grows), the resident memory near it.
        let proc = try #require(ProcStat(pid: pid))
        #expect(user + system > 0.1, "a booted TCG guest has used CPU: \(user) + \(system) s")
        #expect(user + system <= proc.cpuSeconds + 0.05, "scrape \(user + system) s, /proc after it \(proc.cpuSeconds) s")
        #expect(resident > 16 * 1_048_576 && abs(resident - proc.residentBytes) < 64 * 1_048_576,
                "scrape \(resident) B, /proc \(proc.residentBytes) B")
        #expect(first.value("hostmesh_vm_memory_configured_bytes", ["vm": "web"]).map { Int($0.rounded()) } == 128 << 20, "\(first.text.split(separator: "\n").filter { $0.contains("configured") })")
        #expect(first.text.contains("# TYPE hostmesh_vm_cpu_seconds_total counter"))

        // The VM's traffic on its switch port (frames are its packets), and CPU time that grows.
        var later = first
        for _ in 0..<100 {
            later = try await Scrape.read(endpoint)
            if (later.value("hostmesh_switch_port_frames_total", ["vm": "web", "nic": "net0", "direction": "from_vm"]) ?? 0) > 0,
               (later.value("hostmesh_vm_cpu_seconds_total", ["vm": "web", "mode": "user"]) ?? 0) > user { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect((later.value("hostmesh_switch_port_frames_total", ["vm": "web", "nic": "net0", "direction": "from_vm"]) ?? 0) > 0, "\(later.text.suffix(3000))")
        #expect((later.value("hostmesh_switch_port_bytes_total", ["vm": "web", "nic": "net0", "direction": "from_vm"]) ?? 0) >= 42) // an ARP request
        #expect((later.value("hostmesh_vm_cpu_seconds_total", ["vm": "web", "mode": "user"]) ?? 0) > user)

        // DRS and maintenance: one host, balanced, nothing recommended; in maintenance once entered.
        #expect(later.value("hostmesh_drs_imbalance", [:]) != nil && later.value("hostmesh_drs_imbalance_target", [:]) != nil, "\(later.text.suffix(3000))")
        #expect(later.value("hostmesh_drs_recommended_moves", [:]) == 0)
        #expect(later.value("hostmesh_drs_moves_started_total", [:]) == 0)
        #expect(later.value("hostmesh_hosts_in_maintenance", [:]) == 0)
        _ = try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .enter, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        #expect(try await Scrape.read(endpoint).value("hostmesh_hosts_in_maintenance", [:]) == 1)
        _ = try await a.control.call("host.maintenance", DRSTypes.Maintenance(action: .exit, host: "node-a"), as: DRSTypes.MaintenanceStatus.self)
        #expect(try await Scrape.read(endpoint).value("hostmesh_hosts_in_maintenance", [:]) == 0)

        // A VM that stops loses its gauges; its CPU counter stays where it was.
        _ = try await a.control.call("vm.stop", ControlTypes.VMReference(vm: "web"), as: VMInfo.self)
        let stopped = try await Scrape.read(endpoint)
        #expect(stopped.value("hostmesh_vm_resident_memory_bytes", ["vm": "web"]) == nil, "\(stopped.text.suffix(3000))")
        #expect((stopped.value("hostmesh_vm_cpu_seconds_total", ["vm": "web", "mode": "user"]) ?? 0) > 0)
    }

    // MARK: - The command line as JSON, events and the dashboard following a migration

    @Test func commandLineJSONEventsAndTheDashboardFollowAMigrationStartedFromTheCommandLine() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let a = try await mesh.start("node-a", arguments: ["--dashboard", "127.0.0.1:0"])
        let dashboard = try await DashboardBrowserTests().dashboardAddress(a)
        let tokenFile = try await CLI.json(["dashboard", "token"], a)
        let token = try #require(tokenFile["token"] as? String)
        #expect(token.count == 64 && tokenFile["path"] as? String == a.stateDirectory + "/dashboard.token")

        // Watchers: the dashboard's event stream, and `hostmesh events --json --progress` (in
        // place once it printed `subscribed`; the dashboard's connects meanwhile).
        let stream = EventStreamReader(address: dashboard, path: "/events", token: token)
        let watching = Task { await stream.read(for: .seconds(120)) { $0.contains(#""ended":true"#) && $0.contains(#""phase":"done""#) } }
        let eventsLog = mesh.root + "/events.jsonl"
        let events = try spawn(AgentProcess.binary, ["events", "--json", "--progress", "--state-dir", a.stateDirectory], logPath: eventsLog)
        defer { kill(events, SIGKILL) }
        try await waitUntil("the events command subscribed") {
            // Not written yet: nothing seen yet, asked again.
            ((try? String(contentsOfFile: eventsLog, encoding: .utf8)) ?? "").contains(#""kind":"subscribed""#)
        }
        let b = try await mesh.start("node-b", arguments: ["--join", a.address])

        _ = try await a.control.call("vm.create", ControlTypes.CreateVM(spec: spec("web", work: "heartbeat"), start: true), as: VMInfo.self)
        _ = try await MigrationEndToEndTests().heartbeat(a, "web", after: 1)
        try await waitForMember(a, "node-b")

        // The migration, from the command line: its final result as JSON.
        let report = try await CLI.json(["migrate", "web", "--to", "node-b"], a)
        #expect(Set(report.keys).isSuperset(of: ["totalMs", "downtimeMs", "qemuDowntimeMs", "switchoverMs", "transferredBytes", "mbPerSecond",
                                                 "iterations", "ladder", "streams"]), "\(report)")
        #expect((report["transferredBytes"] as? Int ?? 0) > 0)

        // The dashboard showed it live (progress lines on the source), to its end.
        let seen = await watching.value
        let live = seen.split(separator: "\n").filter { $0.hasPrefix("data: ") && $0.contains(#""migration":""#) && $0.contains(#""role":"source""#) }
            .compactMap { try? JSONDecoder().decode(LiveMigrationLine.self, from: Data($0.dropFirst("data: ".count).utf8)) }
        #expect(live.contains { !$0.ended && $0.progress != nil }, "no live progress in the dashboard's stream:\n\(seen.suffix(3000))")
        #expect(live.last?.ended == true && live.last?.vm == "web" && live.last?.peer.isEmpty == false, "\(seen.suffix(2000))")
        let state = try JSONSerialization.jsonObject(with: Data(try await httpGet("http://\(dashboard)/api/state", token: token).utf8)) as? [String: Any]
        #expect(((state?["live"] as? [[String: Any]]) ?? []).contains { $0["vm"] as? String == "web" && $0["ended"] as? Bool == true })

        // `hostmesh events --json --progress`: one object per line, the progress and the phases.
        // Not written yet: nothing seen yet, asked again.
        try await waitUntil("the events command saw the end") { ((try? String(contentsOfFile: eventsLog, encoding: .utf8)) ?? "").contains("migration.source.done") }
        kill(events, SIGKILL)
        let lines = try String(contentsOfFile: eventsLog, encoding: .utf8).split(whereSeparator: \.isNewline)
        var kinds: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not one JSON object: \(line)")
            #expect(object["time"] is String && object["host"] as? String == "node-a", "\(line)")
            kinds.append(object["kind"] as? String ?? "")
            if object["kind"] as? String == "migration.progress" { #expect((object["progress"] as? [String: Any])?["phase"] is String, "\(line)") }
        }
        #expect(kinds.contains("migration.progress") && kinds.contains("migration.source.transferring") && kinds.contains("migration.source.done"), "\(kinds)")
        // The subscriber that was killed left the agent serving.
        _ = try await a.control.call("status", Empty(), as: ControlTypes.Status.self)

        try await everyListingCommandPrintsItsDocumentedJSON(a, b)
    }

    /// Each command that prints, with `--json`: one JSON value with the fields Deploy/OPERATING.md
    /// ("The command line as JSON") names.
    func everyListingCommandPrintsItsDocumentedJSON(_ a: AgentProcess, _ b: AgentProcess) async throws {
        let objects: [([String], AgentProcess, Set<String>)] = [
            (["status"], b, ["hostID", "domain", "listen", "software", "vms"]),
            (["vm", "show", "web"], b, ["info", "spec", "migrations"]),
            (["vm", "console-log", "web", "--lines", "2"], b, ["text"]),
            (["drs", "status"], a, ["automation", "threshold", "intervalSeconds", "imbalance", "target", "hosts", "movesStarted"]),
            (["host", "maintenance", "status", "node-b"], a, ["host", "state", "remaining", "moving", "blocked"]),
            (["host", "health", "status"], a, ["host", "state", "reasons", "policy", "evacuating"]),
            (["keys", "show"], a, ["host", "identityKey", "staticKey", "certificateFile", "certificate", "trusts"]),
            (["migrate", "web", "--to", "node-a", "--check"], b, ["vm", "destination", "items"]),
        ]
        for (arguments, agent, keys) in objects {
            let object = try await CLI.json(arguments, agent)
            #expect(Set(object.keys).isSuperset(of: keys), "\(arguments): \(object.keys.sorted()) lacks \(keys.subtracting(object.keys).sorted())")
        }
        let arrays: [([String], AgentProcess, Set<String>, Bool)] = [
            (["members"], a, ["host", "domain", "address", "status", "incarnation", "cores", "memoryFreeMiB", "vms", "load", "migrations",
                              "lastUpdateSeconds", "local"], true),
            (["vm", "list"], b, ["id", "name", "state", "vcpus", "memoryMiB"], true),
            (["migrations"], a, ["id", "vm", "role", "peer", "phase", "startedAt"], true),
            (["ownership"], b, ["vm", "owner", "epoch"], true),
            (["drs", "recommendations"], a, [], false),
            (["rule", "list"], a, [], false),
            (["pool", "list"], a, [], false),
            (["schedule", "list"], a, [], false),
            (["domain", "revocations"], a, [], false),
            (["domain", "rotations"], a, [], false),
            (["domain", "federation", "list"], a, [], false),
            (["domain", "federation", "tombstones"], a, [], false),
        ]
        for (arguments, agent, keys, nonEmpty) in arrays {
            let rows = try await CLI.jsonArray(arguments, agent)
            #expect(!nonEmpty || !rows.isEmpty, "\(arguments): no row")
            for row in rows { #expect(Set(row.keys).isSuperset(of: keys), "\(arguments): \(row.keys.sorted()) lacks \(keys.subtracting(row.keys).sorted())") }
        }
        // A sentence the agent answers is {"text": …}; the report of a migrated VM is in its history.
        #expect(try await CLI.json(["join", a.address], b)["text"] is String)
        let history = try await CLI.jsonArray(["migrations"], a)
        #expect(history.contains { ($0["report"] as? [String: Any])?["downtimeMs"] is Int && $0["vm"] as? String == "web" })
    }

    func waitForMember(_ agent: AgentProcess, _ host: String) async throws {
        try await waitUntil("\(agent.hostID) sees \(host) alive with its channel") {
            let rows = (try? await agent.control.call("members", Empty(), as: [MemberRow].self)) ?? []
            return rows.contains { $0.host == host && $0.status == "alive" && $0.channel != nil }
        }
    }

    func waitUntil(_ what: String, _ check: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !(await check()) {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("never: \(what)") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func httpGet(_ url: String, token: String) async throws -> String {
        var request = URLRequest(url: URL(string: url)!)
        request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization")
        let (data, _) = try await URLSession.shared.data(for: request)
        return String(decoding: data, as: UTF8.self)
    }

    /// The fields of a dashboard `migration` event the test looks at.
    struct LiveMigrationLine: Decodable {
        var vm: String
        var peer: String
        var ended: Bool
        var progress: MigrationProgressUpdate?
    }
}
