import Agent
import ControlAPI
import Foundation
public import Hypervisor
import MeshTime

/// `hostmesh bench storage`: a guest with a local 1 GiB disk (half of it written) migrated with
/// its disk by hostmesh (two agents, disk and memory tunnelled through their encrypted channels)
/// and by QEMU directly (the same `blockdev-mirror` into the destination's NBD export over a unix
/// socket in clear, then the memory with `pause-before-switchover`, the mirror completed at that
/// pause), alternating in one run; plus a plain `qemu-img convert` of the same image into a
/// `qemu-nbd` export over a unix socket, the disk copy alone.
///
/// The guest's write latency (its disk log's O_DIRECT|O_SYNC records, each printed with its
/// latency) is measured while quiet and while its disk is mirrored.
public enum StorageBenchmark {
    /// One measured run.
    public struct Row: Codable, Sendable {
        /// `idle` (no disk writes), `writing` (the disk log, ~200 KB/s of synchronous 4 KiB
        /// writes), or `none` (no guest: the convert reference).
        public var workload: String
        /// `tunnel` (hostmesh), `direct` (QEMU over unix sockets in clear) or `convert`.
        public var path: String
        /// From the start (destination QEMU launch included) to the guest running there, ms. For
        /// the tunnel, the whole `migrate` command, its pre-flight checklist included (since
        /// session 40; before, the migration after its checklist).
        public var totalMs: Int64
        /// Guest pause, ms (0 for convert).
        public var downtimeMs: Int64
        /// The disk's virtual size over the time its copy took to synchronise, MB/s.
        public var diskMBs: Double
        /// The guest's p99 write latency while its disk was mirrored, ms (nil: no writes measured).
        public var guestWriteP99Ms: Double?
        /// The same guest's p99 just before, with no migration, ms.
        public var guestWriteP99QuietMs: Double?
        /// How many writes `guestWriteP99Ms` is over (about 50 a second of mirror: a round's p99
        /// is its worst write or two, hence the pooled figure the summary adds).
        public var guestWritesMeasured: Int? = nil
        /// Every write's latency while mirrored and while quiet, µs: pooled over rounds by the
        /// summary (not in the JSON, which has the counts).
        public var guestWriteSamplesUs: [Int] = []
        public var guestWriteQuietSamplesUs: [Int] = []
        /// CPU seconds spent by every process involved (agents, QEMUs, qemu-img/qemu-nbd) during the run.
        public var cpuSeconds: Double
        /// `cpuSeconds` per byte moved (the disk's virtual size plus memory), ns.
        public var cpuNsPerByte: Double
        /// In the concurrent mode (`--concurrent N`): how many guests moved at once, and which of
        /// them this row is (1...N); their `cpuSeconds` is the group's CPU divided by N. Nil: one
        /// guest alone.
        public var concurrent: Int? = nil
        public var vm: Int? = nil
        /// The guest's pause step by step: each point's time after the source QEMU's STOP, ms
        /// (the agents' switchover timeline for `tunnel`, the benchmark's own steps for `direct`).
        public var switchoverMs: [String: Double]? = nil
        /// Where the total went, ms (`Phase`): the same steps on both paths, so a difference in
        /// total shows in the step that made it.
        public var phasesMs: [String: Int64]? = nil

        enum CodingKeys: String, CodingKey {
            case workload, path
            case totalMs = "total_ms", downtimeMs = "downtime_ms", diskMBs = "disk_mb_s"
            case guestWriteP99Ms = "guest_write_p99_ms", guestWriteP99QuietMs = "guest_write_p99_quiet_ms"
            case guestWritesMeasured = "guest_writes_measured"
            case cpuSeconds = "cpu_s", cpuNsPerByte = "cpu_ns_per_byte"
            case concurrent, vm
            case switchoverMs = "switchover_ms"
            case phasesMs = "phases_ms"
        }
    }

    /// The steps of a run's total, in order. `checklist`: the tunnel's pre-flight checklist and
    /// what `migrate` does around the migration itself (the total less the migration's own, 0 for
    /// direct); `setup`: up to the mirror's start (the destination's QEMU and NBD export, and for
    /// the tunnel its channel and prepare); `mirror`: until every disk is synchronised; `memory`:
    /// QEMU's memory migration to its end, the mirrors' completion at its pause included;
    /// `rest`: the handover after it (the tunnel's commit; direct's NBD stop and `cont`).
    public enum Phase: String, CaseIterable, Sendable {
        case checklist, setup, mirror, memory, rest
    }

    /// What to run.
    public struct Options: Sendable {
        public var kernel: String
        public var initrd: String
        /// Guest RAM.
        public var memoryMiB = 256
        /// The disk's virtual size.
        public var diskMiB = 1024
        /// How much of it holds data (the rest is sparse).
        public var writtenMiB = 512
        /// Rounds per workload and path.
        public var rounds = 3
        /// Seconds of quiet writing measured before each migration.
        public var quietSeconds = 3
        /// Above 1: instead of the single-guest comparison, this many writing guests migrated at
        /// once through the tunnel against the same number by QEMU directly, in each round.
        public var concurrent = 0
        /// Each disk mirror's buffer (QEMU's `buf-size`), the same on both paths (nil: QEMU's 16 MiB).
        public var mirrorBufferBytes: Int64 = DiskMirror.defaultBufferBytes
        /// Each disk mirror's copy-rate cap until it is synchronised (QEMU's `speed`), bytes/s, the
        /// same on both paths (nil: none, hostmesh's default).
        public var mirrorSpeedBytesPerSecond: Int64?
        /// The workloads measured, in this order (`idle`, `writing`).
        public var workloads = ["idle", "writing"]

        public init(kernel: String, initrd: String) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    public static func run(_ options: Options, log: @Sendable (String) -> Void = { _ in }) async throws -> [Row] {
        let work = NSTemporaryDirectory() + "hostmesh-bench-storage-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) } // a temporary directory: what is left is only disk space
        let base = work + "/base.raw"
        try makeImage(base, diskMiB: options.diskMiB, writtenMiB: options.writtenMiB)
        let timeline = SwitchoverTimelineRecorder()
        let mesh = try await LocalMesh.start(in: work, timeline: timeline)
        defer { mesh.stop() }
        if options.concurrent > 1 { return try await runConcurrent(options, mesh: mesh, base: base, work: work, log: log) }
        var rows: [Row] = []
        for round in 0..<options.rounds {
            let convert = try await runConvert(options, base: base, work: work + "/convert-\(round)")
            log("none    convert round \(round + 1): \(convert.totalMs) ms, \(Int(convert.diskMBs)) MB/s, cpu \(format(convert.cpuSeconds)) s")
            rows.append(convert)
            for workload in options.workloads {
                let direct = try await runDirect(options, workload: workload, base: base, work: work + "/direct-\(workload)-\(round)")
                log(describe(direct, round: round))
                log("  phases: " + describe(direct.phasesMs))
                log("  switchover: " + describe(direct.switchoverMs))
                rows.append(direct)
                _ = timeline.take()
                var tunnel = try await runTunnel(options, mesh: mesh, workload: workload, base: base, work: work, name: "storage-\(workload)-\(round)")
                tunnel.switchoverMs = steps(timeline.take().map { ($0.name, $0.at) }, from: "source-qemu-stop")
                log("  switchover: " + describe(tunnel.switchoverMs))
                log(describe(tunnel, round: round))
                log("  phases: " + describe(tunnel.phasesMs))
                rows.append(tunnel)
            }
        }
        return rows
    }

    static func describe(_ row: Row, round: Int) -> String {
        "\(row.workload) \(row.path)\(row.vm.map { " vm \($0)" } ?? "") round \(round + 1): total \(row.totalMs) ms, downtime \(row.downtimeMs) ms, disk \(Int(row.diskMBs)) MB/s, "
            + "write p99 \(row.guestWriteP99Ms.map(format) ?? "-") ms (quiet \(row.guestWriteP99QuietMs.map(format) ?? "-") ms), cpu \(format(row.cpuSeconds)) s"
    }

    static func format(_ value: Double) -> String { String(format: "%.2f", value) }

    /// A run's phases in order, ms.
    static func describe(_ phases: [String: Int64]?) -> String {
        guard let phases else { return "-" }
        return Phase.allCases.map { "\($0.rawValue) \(phases[$0.rawValue].map(String.init) ?? "-")" }.joined(separator: ", ")
    }

    /// Each point's time after `origin`'s (the first of each name), ms; nil without the origin.
    static func steps(_ points: [(name: String, at: Double)], from origin: String) -> [String: Double]? {
        guard let zero = points.first(where: { $0.name == origin })?.at else { return nil }
        var out: [String: Double] = [:]
        for point in points where out[point.name] == nil { out[point.name] = ((point.at - zero) * 1e4).rounded() / 10 }
        return out
    }

    /// "name +ms, …" in time order.
    static func describe(_ steps: [String: Double]?) -> String {
        guard let steps else { return "-" }
        return steps.sorted { $0.value < $1.value }.map { String(format: "%@ %+.1f", $0.key, $0.value) }.joined(separator: ", ")
    }

    // MARK: - Image and guest

    /// A sparse raw image of `diskMiB` whose first `writtenMiB` hold data that does not compress.
    static func makeImage(_ path: String, diskMiB: Int, writtenMiB: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ControlError.failed("cannot create \(path)")
        }
        defer { try? handle.close() } // written and synced below; a close error loses nothing
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<writtenMiB {
            for i in stride(from: 0, to: chunk.count, by: 8) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                withUnsafeBytes(of: state) { chunk.replaceSubrange(i..<i + 8, with: $0) }
            }
            try handle.write(contentsOf: chunk)
        }
        try handle.truncate(atOffset: UInt64(diskMiB) << 20)
        try handle.synchronize()
    }

    /// A copy of `base` at `path`, keeping it sparse.
    static func copy(_ base: String, to path: String) async throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let status = try await run("/bin/cp", ["--sparse=always", base, path])
        guard status == 0 else { throw ControlError.failed("cp of the benchmark image failed (\(status))") }
    }

    /// Runs a child to its end without holding a thread: the in-process agents of `LocalMesh`
    /// share this process's cooperative pool.
    static func run(_ executable: String, _ arguments: [String]) async throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        return try await withCheckedThrowingContinuation { done in
            process.terminationHandler = { ended in done.resume(returning: ended.terminationStatus) }
            do { try process.run() } catch {
                process.terminationHandler = nil
                done.resume(throwing: error)
            }
        }
    }

    static func spec(_ options: Options, name: String, workload: String, disk: String) -> VMSpec {
        VMSpec(id: UUID().uuidString.lowercased(), name: name, vcpus: 1, memoryMiB: options.memoryMiB,
               disks: [.init(path: disk, format: .raw, shared: false)],
               boot: .kernel(path: options.kernel, initrd: options.initrd, commandLine: "console=ttyS0 quiet"),
               accelerator: .auto, extraKernelArguments: [workload == "writing" ? "hm.work=heartbeat,disk" : "hm.work=heartbeat"])
    }

    /// Record number → write latency (µs) of every disk-log line on a console.
    static func latencies(_ console: String) -> [Int: Int] {
        var out: [Int: Int] = [:]
        for line in console.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: " ")
            if parts.count == 4, parts[0] == "DISK", let n = Int(parts[2]), let us = Int(parts[3]) { out[n] = us }
        }
        return out
    }

    /// The 99th percentile, ms.
    public static func p99(_ microseconds: [Int]) -> Double? {
        guard !microseconds.isEmpty else { return nil }
        let sorted = microseconds.sorted()
        return Double(sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]) / 1000
    }

    /// Waits for the guest, and for a writing one lets it write `quietSeconds`; returns the
    /// records seen so far (the quiet sample).
    static func settle(_ options: Options, workload: String, console: @Sendable () async throws -> String) async throws -> [Int: Int] {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = try await console()
            if text.contains("HOSTMESH-GUEST ready"), workload == "idle" || !latencies(text).isEmpty { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        guard workload == "writing" else { return [:] }
        try await Task.sleep(for: .seconds(options.quietSeconds))
        return latencies(try await console())
    }

    /// Polls a console while a migration runs and keeps every record after `after`.
    final class Collector: Sendable {
        let task: Task<[Int: Int], Never>
        init(after: Int, console: @escaping @Sendable () async -> String) {
            task = Task {
                var seen: [Int: Int] = [:]
                while !Task.isCancelled {
                    for (n, us) in StorageBenchmark.latencies(await console()) where n > after { seen[n] = us }
                    try? await Task.sleep(for: .milliseconds(100)) // cancelled: the loop ends
                }
                return seen
            }
        }
        func finish() async -> [Int] {
            task.cancel()
            return Array(await task.value.values)
        }
    }

    // MARK: - Paths

    /// `group`: one of several guests migrated at once (the concurrent mode); it starts and ends
    /// its measurement with the others.
    static func runTunnel(_ options: Options, mesh: LocalMesh, workload: String, base: String, work: String, name: String,
                          group: ConcurrentGroup? = nil) async throws -> Row {
        let disk = work + "/tunnel/\(name).raw"
        try await copy(base, to: disk)
        let spec = spec(options, name: name, workload: workload, disk: disk)
        let info = try await mesh.source.call("vm.create", ControlTypes.CreateVM(spec: spec, start: true), as: VMInfo.self)
        let source = mesh.source
        let console: @Sendable () async -> String = {
            // Gone (the guest moved on): nothing more to read from the source.
            (try? await source.call("vm.console", ControlTypes.Console(vm: name, lines: 2000), as: ControlTypes.Text.self).text) ?? ""
        }
        let quiet = try await settle(options, workload: workload) { await console() }
        await group?.start.arrive()
        guard let sourcePid = info.pid else { throw ControlError.failed("the source VM has no pid") }
        let (own0, reaped0) = ProcessCPU.ownAndReaped()
        let sourceCPU0 = ProcessCPU.seconds(of: sourcePid)
        let collector = Collector(after: quiet.keys.max() ?? 0, console: console)
        let start = ContinuousClock.now
        let report = try await mesh.source.call("migrate", ControlTypes.Migrate(vm: name, to: .address(HostPort(host: "127.0.0.1", port: mesh.destinationPort)),
                                                                                settings: settings(options)), as: MigrationReport.self)
        let wall = ContinuousClock.now - start
        let during = await collector.finish()
        let (own1, reaped1) = ProcessCPU.ownAndReaped()
        let moved = try await mesh.destination.call("vm.list", Empty(), as: [VMInfo].self).first { $0.name == name }
        let destinationCPU = moved?.pid.map(ProcessCPU.seconds(of:)) ?? 0
        // The source QEMU quit and was reaped by its agent (this process): its lifetime is in `reaped`.
        let sourceCPU = kill(sourcePid, 0) == 0 ? ProcessCPU.seconds(of: sourcePid) - sourceCPU0 : max(0, reaped1 - reaped0 - sourceCPU0)
        let cpu = (own1 - own0) + sourceCPU + destinationCPU
        await group?.end.arrive()
        _ = try await mesh.destination.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
        try? FileManager.default.removeItem(atPath: disk) // deleted by the handover already, unless kept
        let bytes = Double(options.diskMiB << 20) + Double(report.transferredBytes)
        let mirrored = report.disks?.first
        let phases = report.phasesMs ?? [:]
        let setup = (phases["connect"] ?? 0) + (phases["prepare"] ?? 0) + (phases["open"] ?? 0), mirror = phases["mirror"] ?? 0, memory = phases["transfer"] ?? 0
        return Row(workload: workload, path: "tunnel", totalMs: wall.wholeMilliseconds, downtimeMs: report.downtimeMs,
                   diskMBs: Double(options.diskMiB << 20) / 1e3 / Double(max(mirrored?.msToReady ?? 1, 1)),
                   guestWriteP99Ms: p99(during), guestWriteP99QuietMs: p99(Array(quiet.values)),
                   guestWritesMeasured: workload == "writing" ? during.count : nil,
                   guestWriteSamplesUs: during, guestWriteQuietSamplesUs: Array(quiet.values),
                   cpuSeconds: cpu, cpuNsPerByte: cpu * 1e9 / bytes,
                   phasesMs: [Phase.checklist.rawValue: wall.wholeMilliseconds - report.totalMs, Phase.setup.rawValue: setup,
                              Phase.mirror.rawValue: mirror, Phase.memory.rawValue: memory,
                              Phase.rest.rawValue: report.totalMs - setup - mirror - memory])
    }

    /// hostmesh's settings for a run: its defaults, with the mirror buffer the direct path gets too.
    static func settings(_ options: Options) -> MigrationSettings {
        var settings = MigrationSettings()
        settings.diskMirrorBufferBytes = options.mirrorBufferBytes
        settings.diskMirrorBackgroundBytesPerSecond = options.mirrorSpeedBytesPerSecond
        return settings
    }

    actor Once {
        private var done = false
        func claim() -> Bool { defer { done = true }; return !done }
    }

    static func runDirect(_ options: Options, workload: String, base: String, work: String, group: ConcurrentGroup? = nil) async throws -> Row {
        let sourceImage = work + "/source.raw", destinationImage = work + "/destination.raw"
        try await copy(base, to: sourceImage)
        let spec = spec(options, name: "direct", workload: workload, disk: sourceImage)
        let source = try await VMProcess.launch(spec: spec, directory: VMRuntimeDirectory(path: work + "/source"))
        defer { source.kill() }
        let sourceDirectory = source.directory
        let quiet = try await settle(options, workload: workload) { sourceDirectory.readConsole() }
        await group?.start.arrive()
        try await QEMUImageTool.create(destinationImage, format: .raw, virtualSize: UInt64(options.diskMiB) << 20, thin: true)
        var destinationSpec = spec
        destinationSpec.disks[0].path = destinationImage
        let stops = source.qmp.events()
        let stopped = Task { () -> Double? in for await e in stops where e.name == "STOP" { return e.timestamp }; return nil }
        let pauses = source.qmp.events()
        let paused = Task { () -> Double? in
            for await e in pauses where e.name == "MIGRATION" && e.data["status"]?.stringValue == "pre-switchover" { return e.timestamp }
            return nil
        }
        let marks = Marks()
        let (own0, _) = ProcessCPU.ownAndReaped()
        let sourceCPU0 = ProcessCPU.seconds(of: source.pid)
        let collector = Collector(after: quiet.keys.max() ?? 0) { sourceDirectory.readConsole() }
        let start = ContinuousClock.now
        var destinationOptions = VMProcess.Options()
        destinationOptions.accelerator = source.record.accelerator
        destinationOptions.memoryKiB = source.record.guestRAMKiB
        let destination = try await VMProcess.launch(spec: destinationSpec, directory: VMRuntimeDirectory(path: work + "/destination"),
                                                     mode: .incoming, options: destinationOptions)
        defer { destination.kill() }
        let resumes = destination.qmp.events()
        let resumed = Task { () -> Double? in for await e in resumes where e.name == "RESUME" { return e.timestamp }; return nil }
        let uri = "unix:" + destination.directory.incomingSocket
        let incoming = IncomingMigration(qmp: destination.qmp)
        try await incoming.listen(on: uri)
        let nbd = destination.directory.path + "/nbd.sock"
        try await destination.qmp.nbdServerStart(socket: nbd)
        try await destination.qmp.blockExportAddNBD(nodeName: "disk0", name: "disk0")
        var configured = DiskMirror(qmp: source.qmp, indices: [0])
        configured.bufferBytes = options.mirrorBufferBytes
        let mirror = configured
        // Before the NBD client's connection, as the tunnel's mirror step counts it (its `blockdev-add` dials the channel).
        let mirrorStart = ContinuousClock.now
        try await mirror.start(socket: nbd, backgroundSpeed: options.mirrorSpeedBytesPerSecond)
        _ = try await mirror.waitUntilReady(timeout: .seconds(600))
        let readyMs = (ContinuousClock.now - mirrorStart).wholeMilliseconds
        let memoryStart = ContinuousClock.now
        // As hostmesh does once synchronised: the cap paced the bulk copy only.
        if options.mirrorSpeedBytesPerSecond != nil { await mirror.uncap() }
        try await source.qmp.migrateSetCapabilities([.pauseBeforeSwitchover: true])
        let once = Once()
        let result = try await OutgoingMigration(qmp: source.qmp).run(to: uri) { sample, _ in
            guard sample.phase == .preSwitchover, await once.claim() else { return }
            // As hostmesh does at this pause: the mirror completes, then QEMU sends the devices.
            await marks.mark("mirrors-completing")
            do { try await mirror.complete() } catch { return } // the run then fails on QEMU's side and says why
            await marks.mark("mirrors-completed")
            try? await source.qmp.migrateContinue() // refused: the migration fails and `run` throws
            await marks.mark("migrate-continued")
        }
        await marks.mark("source-completed")
        let memoryEnd = ContinuousClock.now
        try await incoming.waitUntilLoaded()
        await marks.mark("destination-loaded")
        try await destination.qmp.nbdServerStop()
        await marks.mark("destination-nbd-stopped")
        try await destination.qmp.cont()
        let total = ContinuousClock.now - start
        let during = await collector.finish()
        let (own1, _) = ProcessCPU.ownAndReaped()
        let cpu = (own1 - own0) + (ProcessCPU.seconds(of: source.pid) - sourceCPU0) + ProcessCPU.seconds(of: destination.pid)
        let (stop, resume) = (await stopped.value, await resumed.value)
        await group?.end.arrive()
        paused.cancel() // returned at the pause already; otherwise there was none to wait for
        let points = await marks.points + [("source-qemu-stop", stop ?? 0), ("destination-qemu-resume", resume ?? 0)]
            + ((await paused.value).map { [("source-qemu-pre-switchover", $0)] } ?? [])
        let bytes = Double(options.diskMiB << 20) + Double(result.transferredBytes)
        return Row(workload: workload, path: "direct", totalMs: total.wholeMilliseconds,
                   downtimeMs: Int64((((resume ?? 0) - (stop ?? 0)) * 1000).rounded()),
                   diskMBs: Double(options.diskMiB << 20) / 1e3 / Double(max(readyMs, 1)),
                   guestWriteP99Ms: p99(during), guestWriteP99QuietMs: p99(Array(quiet.values)),
                   guestWritesMeasured: workload == "writing" ? during.count : nil,
                   guestWriteSamplesUs: during, guestWriteQuietSamplesUs: Array(quiet.values),
                   cpuSeconds: cpu, cpuNsPerByte: cpu * 1e9 / bytes, switchoverMs: steps(points, from: "source-qemu-stop"),
                   phasesMs: [Phase.checklist.rawValue: 0, Phase.setup.rawValue: (mirrorStart - start).wholeMilliseconds, Phase.mirror.rawValue: readyMs,
                              Phase.memory.rawValue: (memoryEnd - memoryStart).wholeMilliseconds,
                              Phase.rest.rawValue: total.wholeMilliseconds - (memoryEnd - start).wholeMilliseconds])
    }

    /// The direct path's steps, with wall-clock times (QEMU's event timestamps are too).
    actor Marks {
        private(set) var points: [(name: String, at: Double)] = []
        func mark(_ name: String) { points.append((name, Date().timeIntervalSince1970)) }
    }

    static func runConvert(_ options: Options, base: String, work: String) async throws -> Row {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let target = work + "/target.raw", socket = work + "/nbd.sock"
        try await QEMUImageTool.create(target, format: .raw, virtualSize: UInt64(options.diskMiB) << 20, thin: true)
        let (own0, reaped0) = ProcessCPU.ownAndReaped()
        let start = ContinuousClock.now
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/qemu-nbd")
        server.arguments = ["--socket=\(socket)", "--format=raw", "--cache=none", target]
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let deadline = ContinuousClock.now + .seconds(10)
        while !FileManager.default.fileExists(atPath: socket) {
            guard ContinuousClock.now < deadline else { throw ControlError.failed("qemu-nbd did not open \(socket)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        let status = try await run("/usr/bin/qemu-img", ["convert", "-n", "-f", "raw", "-O", "raw", base, "nbd+unix:///?socket=\(socket)"])
        guard status == 0 else { throw ControlError.failed("qemu-img convert into qemu-nbd failed (\(status))") }
        let total = ContinuousClock.now - start
        // qemu-nbd ends once its one client has gone; polled, so no thread waits on it.
        while server.isRunning { try await Task.sleep(for: .milliseconds(5)) }
        let (own1, reaped1) = ProcessCPU.ownAndReaped()
        let cpu = (own1 - own0) + (reaped1 - reaped0)
        return Row(workload: "none", path: "convert", totalMs: total.wholeMilliseconds, downtimeMs: 0,
                   diskMBs: Double(options.diskMiB << 20) / 1e3 / Double(max(total.wholeMilliseconds, 1)),
                   guestWriteP99Ms: nil, guestWriteP99QuietMs: nil, cpuSeconds: cpu, cpuNsPerByte: cpu * 1e9 / Double(options.diskMiB << 20))
    }
}
