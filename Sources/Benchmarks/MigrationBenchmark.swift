import Agent
import ControlAPI
import Foundation
public import Hypervisor
import LinkEmulator
import Logging
import MeshCrypto
import MeshIdentity
import NIOCore
import NIOPosix
import MeshTime
import SecureChannel

/// `hostmesh bench migrate`: the same guest migrated by QEMU directly over a unix socket in
/// clear (the reference) and by hostmesh's default path (two agents, the stream tunnelled
/// through their encrypted channels, commit before the destination runs), in one run.
///
/// Downtime is the guest's real pause for both paths: QEMU's timestamp of the source's STOP
/// event to the destination's RESUME event (one host, one clock).
public enum MigrationBenchmark {
    /// One measured migration.
    public struct Row: Codable, Sendable {
        /// "idle" or "dirty".
        public var workload: String
        /// "direct" (QEMU to QEMU in clear), "tunnel" (hostmesh's default path) or "qemu-tls"
        /// (QEMU to QEMU with QEMU's own TLS and a pre-shared key: the other data path considered).
        public var path: String
        /// From the start (destination QEMU launch included) to the guest running there, ms. For
        /// the tunnel, the whole `migrate` command as an operator waits for it, its pre-flight
        /// checklist included (since session 40; before, `migration_ms`).
        public var totalMs: Int64
        /// Guest pause, STOP to RESUME, ms.
        public var downtimeMs: Int64
        /// Average migration throughput, MB/s.
        public var mbS: Double
        /// Bytes moved.
        public var transferredBytes: Int64
        /// Where the time went, ms (tunnel only).
        public var phasesMs: [String: Int64]? = nil
        /// The tunnel's migration after its checklist, as its report gives it, ms (tunnel only).
        public var migrationMs: Int64? = nil
        /// Why this round of the direct reference did not complete (its figures are then zeros and
        /// count in no median): QEMU's own migration through a window-limited link can outlast
        /// the convergence budget (at 250 ms, a guest dirtying 5 MB/s needs about 26 s of 25).
        public var failed: String? = nil
        /// Round trip of the emulated link the migration crossed, ms (absent: none, loopback).
        public var rttMs: Int? = nil
        /// Rate of that link, Mbit/s.
        public var rateMbit: Double? = nil
        /// Average migration throughput over the link's rate (`mb_s` * 8 / `rate_mbit`): how busy
        /// the migration kept the link while it ran.
        public var linkUse: Double? = nil
        /// CPU seconds (user + system) of both agents over the gigabytes (10^9 bytes) moved
        /// (tunnel only; both agents run in this process).
        public var agentCPUSPerGB: Double? = nil
        /// Seconds one core takes to seal and to open one GB with the channel's bulk AEAD,
        /// measured in the same run: what every tunnelled byte must cost at least.
        public var aeadFloorSPerGB: Double? = nil
        /// `agent_cpu_s_per_gb` over `aead_floor_s_per_gb` (target <= 1.3).
        public var agentCPUOverFloor: Double? = nil
        /// How the link was emulated: "frame" (sites joined at the frame level, every TCP
        /// connection end to end through the delay) or "relay" (userspace TCP relays, which end
        /// each connection); absent on loopback.
        public var link: String? = nil
        /// Frames the link's bottleneck queue dropped from site A to site B during this migration
        /// (frame link only).
        public var linkQueueDrops: Int? = nil
        /// Bytes the link delivered from site A to site B during this migration, Ethernet headers
        /// included (frame link only): at least `transferred_bytes` when the stream crossed it.
        public var linkBytes: Int? = nil

        enum CodingKeys: String, CodingKey {
            case workload, path
            case totalMs = "total_ms", downtimeMs = "downtime_ms", mbS = "mb_s", transferredBytes = "transferred_bytes", phasesMs = "phases_ms"
            case migrationMs = "migration_ms", failed
            case rttMs = "rtt_ms", rateMbit = "rate_mbit", linkUse = "link_use"
            case agentCPUSPerGB = "agent_cpu_s_per_gb", aeadFloorSPerGB = "aead_floor_s_per_gb", agentCPUOverFloor = "agent_cpu_over_floor"
            case link, linkQueueDrops = "link_queue_drops", linkBytes = "link_bytes"
        }

        /// This row with the link it crossed.
        func over(_ link: DistanceLink?, kind: String = "relay") -> Row {
            guard let link else { return self }
            var row = self
            row.link = kind
            row.rttMs = link.rttMs
            row.rateMbit = link.rateMbit
            row.linkUse = mbS * 8 / link.rateMbit
            return row
        }
    }

    /// What to run.
    public struct Options: Sendable {
        /// Guest kernel (the test guest's).
        public var kernel: String
        /// Guest initrd.
        public var initrd: String
        /// Guest RAM.
        public var memoryMiB = 512
        /// MB/s the dirty workload writes.
        public var dirtyRateMB = 50
        /// Rounds per workload and path; rows are reported per round.
        public var rounds = 3
        /// QEMU settings for both paths.
        public var settings = MigrationSettings()
        /// Also measure QEMU's own TLS (pre-shared key) path.
        public var includeQEMUTLS = true
        /// Send both paths through an emulated link (the `LinkEmulator`): the direct path's QEMU
        /// migrates to `tcp:` through it, the tunnel's agents reach the destination's channel
        /// through it. Nil: loopback, as before.
        public var link: DistanceLink?
        /// With `link`: cross it at the frame level between two lab sites (`LabSites`), agents and
        /// QEMUs alike in the sites, instead of through relays. Needs root.
        public var sites: SiteSettings?
        /// The workloads to run, in order ("idle", "dirty").
        public var workloads = ["idle", "dirty"]

        /// Options for a guest.
        public init(kernel: String, initrd: String) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    /// What a run across two lab sites needs.
    public struct SiteSettings: Sendable {
        /// `Scripts/lab.sh`, which makes the sites.
        public var labScript: String
        /// The hostmesh executable the sites' agents run.
        public var agentBinary: String

        /// Settings as given.
        public init(labScript: String, agentBinary: String) {
            self.labScript = labScript
            self.agentBinary = agentBinary
        }
    }

    /// Runs every workload on both paths, alternating, and returns the rows.
    public static func run(_ options: Options, log: @Sendable (String) -> Void = { _ in }) async throws -> [Row] {
        if let link = options.link, let sites = options.sites { return try await runAcrossSites(options, link: link, sites: sites, log: log) }
        let work = NSTemporaryDirectory() + "hostmesh-bench-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let mesh = try await LocalMesh.start(in: work)
        defer { mesh.stop() }
        var emulator: LinkUnderTest?
        if let link = options.link { emulator = try await LinkUnderTest.start(link, tunnelTarget: mesh.destinationPort) }
        defer { emulator?.stop() }
        let floor = try aeadFloorSPerGB()
        log(String(format: "AEAD floor (%@, seal + open on one core): %.3f s/GB", AEADAlgorithm.bulkPreference[0].rawValue, floor))
        var rows: [Row] = []
        for workload in options.workloads {
            let arguments = workloadArguments(options, workload)
            for round in 0..<options.rounds {
                let direct = try await directOrFailed(workload, round: round, log: log) {
                    try await runDirect(options, workload: workload, arguments: arguments, work: work + "/direct-\(workload)-\(round)",
                                        link: emulator).over(options.link)
                }
                log("\(workload) direct  round \(round + 1): total \(direct.totalMs) ms, downtime \(direct.downtimeMs) ms, \(Int(direct.mbS)) MB/s")
                rows.append(direct)
                if options.includeQEMUTLS, options.link == nil {
                    let tls = try await runDirect(options, workload: workload, arguments: arguments, work: work + "/tls-\(workload)-\(round)", tls: true)
                    log("\(workload) qemu-tls round \(round + 1): total \(tls.totalMs) ms, downtime \(tls.downtimeMs) ms, \(Int(tls.mbS)) MB/s")
                    rows.append(tls)
                }
                var tunnel = try await runTunnel(options, source: mesh.source, destination: mesh.destination, workload: workload, arguments: arguments,
                                                 name: "bench-\(workload)-\(round)",
                                                 to: HostPort(host: "127.0.0.1", port: emulator?.tunnelPort ?? mesh.destinationPort)).over(options.link)
                tunnel.aeadFloorSPerGB = floor
                tunnel.agentCPUOverFloor = tunnel.agentCPUSPerGB.map { $0 / floor }
                log("\(workload) tunnel  round \(round + 1): total \(tunnel.totalMs) ms (migration \(tunnel.migrationMs ?? 0) ms after its checklist), downtime \(tunnel.downtimeMs) ms, \(Int(tunnel.mbS)) MB/s, "
                    + String(format: "agents %.3f s/GB (%.2fx the floor), ", tunnel.agentCPUSPerGB ?? 0, tunnel.agentCPUOverFloor ?? 0)
                    + "phases \(tunnel.phasesMs ?? [:])")
                rows.append(tunnel)
            }
        }
        return rows
    }

    /// A round of the direct reference, or, when QEMU's migration ends without the guest moving
    /// (it did not converge within the budget), a row that says so: the run goes on and the
    /// medians leave it out. Other errors (the benchmark's own set-up) still end the run.
    static func directOrFailed(_ workload: String, round: Int, log: (String) -> Void,
                               _ direct: () async throws -> Row) async throws -> Row {
        do { return try await direct() } catch let error as MigrationError {
            log("\(workload) direct  round \(round + 1): did not complete: \(error)")
            return Row(workload: workload, path: "direct", totalMs: 0, downtimeMs: 0, mbS: 0, transferredBytes: 0, failed: "\(error)")
        }
    }

    /// CPU seconds for one thread to seal and then open one GB (10^9 bytes) in the channel's
    /// record size with the preferred bulk AEAD: the median of three measurements of 256 MiB
    /// each. CPU time, not wall time, so that a loaded machine does not raise the floor.
    static func aeadFloorSPerGB() throws -> Double {
        let aead = AEADAlgorithm.bulkPreference[0], record = ChannelPolicy().maxRecordPayload, bytes = 256 << 20
        var samples: [Double] = []
        for _ in 0..<3 {
            let seal = try ChannelBenchmark.rawAEAD(aead: aead, totalBytes: bytes, recordBytes: record, cpuTime: true)
            let open = try ChannelBenchmark.rawOpen(aead: aead, totalBytes: bytes, recordBytes: record, cpuTime: true)
            samples.append(1000 / seal + 1000 / open) // MB/s -> s per 10^9 bytes
        }
        return Spread.median(samples) ?? samples[0]
    }

    /// The guest's kernel arguments for `workload`.
    static func workloadArguments(_ options: Options, _ workload: String) -> [String] {
        workload == "idle" ? ["hm.work=heartbeat"] : ["hm.work=heartbeat,dirty:\(options.dirtyRateMB)"]
    }

    static func spec(_ options: Options, name: String, arguments: [String]) -> VMSpec {
        VMSpec(id: UUID().uuidString.lowercased(), name: name, vcpus: 1, memoryMiB: options.memoryMiB,
               boot: .kernel(path: options.kernel, initrd: options.initrd, commandLine: "console=ttyS0 quiet"),
               accelerator: .auto, extraKernelArguments: arguments)
    }

    /// Waits until the guest printed `ready` (and, for a dirtying guest, until it has dirtied for a second).
    static func waitForGuest(console: @Sendable () async throws -> String, dirty: Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = try await console()
            if text.contains("HOSTMESH-GUEST ready"), !dirty || text.contains("DIRTY mb_s=") { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ControlError.failed("the benchmark guest did not become ready within 60 s")
    }

    /// `sites`: the source QEMU runs at site A, the destination at site B listening on `port` of
    /// its address, and the stream crosses the frame link between them.
    static func runDirect(_ options: Options, workload: String, arguments: [String], work: String, tls: Bool = false,
                          link: LinkUnderTest? = nil, sites: (lab: LabSites, port: Int)? = nil) async throws -> Row {
        let spec = spec(options, name: "direct", arguments: arguments)
        let sourceDirectory = VMRuntimeDirectory(path: work + "/source")
        var sourceOptions = VMProcess.Options(), destinationOptions = VMProcess.Options()
        if let lab = sites?.lab {
            sourceOptions.spawner = { executable, arguments, output in try lab.spawn(on: 1, executable, arguments, output: output) }
            destinationOptions.spawner = { executable, arguments, output in try lab.spawn(on: 2, executable, arguments, output: output) }
        }
        let incomingURI = sites.map { "tcp:\($0.lab.address(2)):\($0.port)" }
        let source = try await VMProcess.launch(spec: spec, directory: sourceDirectory, options: sourceOptions)
        defer { source.kill() }
        try await waitForGuest(console: { sourceDirectory.readConsole() }, dirty: workload == "dirty")
        let stops = source.qmp.events()
        let stopped = Task { () -> Double? in for await e in stops where e.name == "STOP" { return e.timestamp }; return nil }
        let start = ContinuousClock.now
        destinationOptions.accelerator = source.record.accelerator
        destinationOptions.memoryKiB = source.record.guestRAMKiB
        // Plain QEMU: the destination runs the guest the moment it has arrived.
        let destination = try await VMProcess.launch(spec: spec, directory: VMRuntimeDirectory(path: work + "/destination"),
                                                     mode: .incomingAutostart, options: destinationOptions)
        defer { destination.kill() }
        let resumes = destination.qmp.events()
        let resumed = Task { () -> Double? in for await e in resumes where e.name == "RESUME" { return e.timestamp }; return nil }
        // For the TLS path the key would come from the agents' channel (`exportKey`); here any
        // fresh 32 bytes will do.
        let credentials = tls ? try MigrationTLS.create(directory: work + "/tls", key: Array(UUID().uuidString.utf8.prefix(32))) : nil
        defer { credentials?.destroy() }
        // Across an emulated link QEMU migrates over TCP to a relay in front of the destination's socket.
        let relay = try await link?.directRelay(to: destination.directory.incomingSocket)
        defer { if let relay { Task { await relay.close() } } }
        let result = try await DirectMigration.run(source: source, destination: destination, socketPath: destination.directory.incomingSocket,
                                                   sourceURI: relay.map { "tcp:127.0.0.1:\($0.port)" }, incomingURI: incomingURI,
                                                   settings: options.settings, tls: credentials)
        let total = ContinuousClock.now - start
        let (stop, resume) = (await stopped.value, await resumed.value)
        await destination.stop(quitGrace: .seconds(1))
        return Row(workload: workload, path: tls ? "qemu-tls" : "direct", totalMs: total.wholeMilliseconds,
                   downtimeMs: Int64((((resume ?? 0) - (stop ?? 0)) * 1000).rounded()),
                   mbS: Double(result.transferredBytes) / 1e6 / (Double(max(result.totalTimeMs, 1)) / 1000), transferredBytes: result.transferredBytes)
    }

    /// `agentsCPU`: CPU seconds both agents have used so far (default: this process's, where a
    /// `LocalMesh` runs them).
    static func runTunnel(_ options: Options, source: ControlClient, destination: ControlClient, workload: String, arguments: [String], name: String,
                          to channel: HostPort, agentsCPU cpuSeconds: () -> Double = { ProcessCPU.ownAndReaped().own }) async throws -> Row {
        let spec = spec(options, name: name, arguments: arguments)
        _ = try await source.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        try await waitForGuest(console: {
            try await source.call("vm.console", ControlTypes.Console(vm: name, lines: 200), as: ControlTypes.Text.self).text
        }, dirty: workload == "dirty")
        let cpuBefore = cpuSeconds()
        let start = ContinuousClock.now
        let report = try await source.call("migrate", ControlTypes.Migrate(vm: name, to: .address(channel), settings: options.settings),
                                           as: MigrationReport.self)
        let wall = ContinuousClock.now - start
        let agentsCPU = cpuSeconds() - cpuBefore
        _ = try await destination.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
        return Row(workload: workload, path: "tunnel", totalMs: wall.wholeMilliseconds, downtimeMs: report.downtimeMs, mbS: report.mbPerSecond,
                   transferredBytes: report.transferredBytes, phasesMs: report.phasesMs, migrationMs: report.totalMs,
                   agentCPUSPerGB: report.transferredBytes > 0 ? agentsCPU / (Double(report.transferredBytes) / 1e9) : nil)
    }
}

/// Two agents of one domain in this process, on loopback, reached through their control sockets.
struct LocalMesh: Sendable {
    /// Control clients, one per agent.
    let clients: [ControlClient]
    /// Channel ports, one per agent.
    let ports: [Int]
    let tasks: [Task<Void, any Error>]
    /// The directory everything lives in; QEMUs started here are killed at the end.
    let work: String

    var source: ControlClient { clients[0] }
    var destination: ControlClient { clients[1] }
    var destinationPort: Int { ports[1] }

    /// `domain`: the hosts' domain (default: a fresh one named `bench`); hosts are named
    /// `<domain>-a`, `<domain>-b`, ….
    /// `timeline`: collects the agents' switchover timeline (`SwitchoverTrace`).
    static func start(in work: String, hosts: Int = 2, holdFrames: Bool = true, domain given: DomainAuthority? = nil,
                      timeline: SwitchoverTimelineRecorder? = nil) async throws -> LocalMesh {
        let domain = try given ?? DomainAuthority(name: "bench")
        let now = Int64(Date().timeIntervalSince1970)
        var logger = timeline.map { recorder in Logger(label: "bench") { recorder.handler(label: $0) } } ?? Logger(label: "bench")
        logger.logLevel = timeline == nil ? .error : .info
        var clients: [ControlClient] = [], ports: [Int] = [], tasks: [Task<Void, any Error>] = []
        for host in (0..<hosts).map({ "\(domain.name)-\(Character(UnicodeScalar(97 + $0)!))" }) {
            let dir = work + "/" + host
            try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
            let identity = try HostIdentity(hostID: host)
            try identity.save(inDirectory: dir)
            try domain.certify(identity.publicKeys, serial: UInt64(ports.count + 1), notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
            try domain.trustAnchor.save(dir + "/trust/\(domain.name).pub")
            var configuration = AgentConfiguration()
            configuration.stateDirectory = dir
            configuration.channelListen = HostPort(host: "127.0.0.1", port: 0)
            configuration.overlayListen = HostPort(host: "127.0.0.1", port: 0)
            configuration.gossipListen = HostPort(host: "127.0.0.1", port: 0)
            configuration.peers = ports.map { HostPort(host: "127.0.0.1", port: $0) } // hellos key the overlay
            configuration.holdFramesDuringMoves = holdFrames
            let credentials = try AgentCredentials.load(stateDirectory: dir)
            let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
            let agent = Agent(configuration: configuration, credentials: credentials, logger: logger) { bound in
                portContinuation.yield(bound.port)
                portContinuation.finish()
            }
            tasks.append(Task { try await agent.run() })
            var iterator = portStream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ControlError.failed("agent \(host) did not start") }
            ports.append(port)
            clients.append(ControlClient(path: StateDirectory(dir).controlSocket))
        }
        return LocalMesh(clients: clients, ports: ports, tasks: tasks, work: work)
    }

    /// Stops the agents and kills the QEMUs they started (agents leave VMs running on exit).
    func stop() {
        for task in tasks { task.cancel() }
        Self.killProcesses(mentioning: work + "/")
    }

    /// SIGKILLs every other process whose command line contains `text`.
    static func killProcesses(mentioning text: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return }
        for entry in entries {
            guard let pid = Int32(entry), pid != getpid(),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            if String(decoding: cmdline.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text) { kill(pid, SIGKILL) }
        }
    }
}
