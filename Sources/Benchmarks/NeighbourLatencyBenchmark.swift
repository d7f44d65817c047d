import ControlAPI
import Foundation
import Hypervisor

/// What a migration costs the VMs that do not move: two VMs on two hosts ping each other every
/// 10 ms while a third VM migrates back and forth between the same two hosts. Their round
/// trips' p99 while migrations run beside the p99 of a quiet window of the same length, in one
/// run (issue 18 item 4; target: during <= quiet + 2 ms). The switch and gossip have their own
/// event loop (`AgentEventLoops`), so a migration's sealing turns should not delay their frames.
public enum NeighbourLatencyBenchmark {
    /// The figures.
    public struct Result: Codable, Sendable {
        /// p99 of the neighbours' round trips while migrations ran, ms.
        public var rttP99Ms: Double
        /// p99 of their round trips in the quiet windows, ms.
        public var rttP99QuietMs: Double
        /// Medians, ms (during, quiet).
        public var rttMedianMs: Double
        public var rttMedianQuietMs: Double
        /// Round trips measured (during, quiet).
        public var samples: Int
        public var quietSamples: Int
        /// Migrations of the moving VM.
        public var migrations: Int

        enum CodingKeys: String, CodingKey {
            case rttP99Ms = "neighbour_rtt_p99_ms", rttP99QuietMs = "neighbour_rtt_p99_quiet_ms"
            case rttMedianMs = "neighbour_rtt_median_ms", rttMedianQuietMs = "neighbour_rtt_median_quiet_ms"
            case samples, quietSamples = "quiet_samples", migrations
        }
    }

    /// Runs `migrations` migrations of a dirtying 256 MiB VM between two agents of an
    /// in-process mesh, each followed by a quiet window as long as the migration's.
    public static func run(kernel: String, initrd: String, migrations: Int = 6,
                           log: @Sendable (String) -> Void = { _ in }) async throws -> Result {
        let work = NSTemporaryDirectory() + "hostmesh-neighbours-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let mesh = try await LocalMesh.start(in: work, hosts: 2)
        defer { mesh.stop() }
        func spec(_ name: String, ip: String, work: String, memoryMiB: Int = 128) throws -> VMSpec {
            var options = VMSpecOptions(name: name, kernel: kernel)
            options.memoryMiB = memoryMiB
            options.initrd = initrd
            options.workload = work
            options.network = "default"
            options.ip = ip + "/24"
            var spec = try options.spec(id: UUID().uuidString.lowercased())
            spec.extraKernelArguments.append("hm.pingms=10")
            return spec
        }
        let (a, b) = (mesh.clients[0], mesh.clients[1])
        _ = try await b.call("vm.create", ControlTypes.CreateVM(spec: try spec("n2", ip: "10.77.0.5", work: "heartbeat"), start: true), as: VMInfo.self)
        _ = try await a.call("vm.create", ControlTypes.CreateVM(spec: try spec("n1", ip: "10.77.0.4", work: "pingrtt:10.77.0.5"), start: true),
                             as: VMInfo.self)
        _ = try await a.call("vm.create", ControlTypes.CreateVM(spec: try spec("mover", ip: "10.77.0.6", work: "heartbeat,dirty:50", memoryMiB: 256),
                                                                start: true), as: VMInfo.self)
        try await NetworkMigrationBenchmark.waitFor(a, "mover") { $0.contains("DIRTY mb_s=") }
        try await NetworkMigrationBenchmark.waitFor(a, "n1") { rttLines($0).count >= 3 }

        var during: [Double] = [], quiet: [Double] = []
        var at = 0
        for round in 0..<migrations {
            let before = rttLines(try await console(a, "n1")).count
            let start = ContinuousClock.now
            let target = 1 - at
            let report = try await mesh.clients[at].call("migrate", ControlTypes.Migrate(
                vm: "mover", to: .address(HostPort(host: "127.0.0.1", port: mesh.ports[target])), settings: MigrationSettings()), as: MigrationReport.self)
            at = target
            let took = ContinuousClock.now - start
            // A PINGRTT line covers the second before it: wait for the one that covers the end.
            try await Task.sleep(for: .milliseconds(1100))
            let moving = rttLines(try await console(a, "n1")).dropFirst(before).flatMap { $0 }
            during += moving
            // A quiet window as long as the one just measured, after the stragglers settle.
            try await Task.sleep(for: .milliseconds(500))
            let quietStart = rttLines(try await console(a, "n1")).count
            try await Task.sleep(for: took + .milliseconds(1100))
            let still = rttLines(try await console(a, "n1")).dropFirst(quietStart).flatMap { $0 }
            quiet += still
            log(String(format: "migration %d: total %lld ms, downtime %lld ms; neighbours p99 %.2f ms during (%d round trips), %.2f ms quiet (%d)",
                       round + 1, report.totalMs, report.downtimeMs, percentile(moving, 0.99), moving.count, percentile(still, 0.99), still.count))
        }
        for (client, vm) in [(a, "n1"), (b, "n2"), (mesh.clients[at], "mover")] {
            _ = try await client.call("vm.stop", ControlTypes.VMReference(vm: vm), as: VMInfo.self)
        }
        return Result(rttP99Ms: percentile(during, 0.99), rttP99QuietMs: percentile(quiet, 0.99),
                      rttMedianMs: percentile(during, 0.5), rttMedianQuietMs: percentile(quiet, 0.5),
                      samples: during.count, quietSamples: quiet.count, migrations: migrations)
    }

    static func console(_ client: ControlClient, _ vm: String) async throws -> String {
        try await client.call("vm.console", ControlTypes.Console(vm: vm, lines: 100_000), as: ControlTypes.Text.self).text
    }

    /// Each `PINGRTT` line's round trips, ms.
    static func rttLines(_ console: String) -> [[Double]] {
        console.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PINGRTT") }.map { line in
            line.split(separator: " ").dropFirst().compactMap { Double($0).map { $0 / 1000 } }
        }
    }

    /// The `q` quantile of `values` (nearest rank), 0 when empty.
    static func percentile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }
}
