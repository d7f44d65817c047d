import Agent
import ControlAPI
import Foundation
import Hypervisor
import MeshTime
import MeshIdentity

/// `hostmesh bench cross-domain`: the same guest migrated inside one domain (two agents of domain
/// `bench`) and into another, federated domain (an agent of domain `other`, both grants in
/// force), alternating, in one run (Protocol.md §6.10). Targets: cross-domain total <= 1.1x the
/// intra-domain one, downtime <= intra + 10 ms.
public enum CrossDomainBenchmark {
    /// One measured migration.
    public struct Row: Codable, Sendable {
        /// "intra" (inside the domain) or "cross" (into the federated domain).
        public var path: String
        /// From the migration request to the guest running there, ms (the cross-domain offer included).
        public var totalMs: Int64
        /// Guest pause, STOP to RESUME, ms.
        public var downtimeMs: Int64

        enum CodingKeys: String, CodingKey {
            case path
            case totalMs = "total_ms", downtimeMs = "downtime_ms"
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
        /// Rounds; each migrates once inside the domain and once across.
        public var rounds = 3

        /// Options for a guest.
        public init(kernel: String, initrd: String) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    /// Runs `rounds` × (intra, cross), alternating, and returns the rows.
    public static func run(_ options: Options, log: @Sendable (String) -> Void = { _ in }) async throws -> [Row] {
        let work = NSTemporaryDirectory() + "hostmesh-bench-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) } // best effort: a temporary directory
        let home = try DomainAuthority(name: "bench"), other = try DomainAuthority(name: "other")
        let local = try await LocalMesh.start(in: work, hosts: 2, domain: home)
        defer { local.stop() }
        let remote = try await LocalMesh.start(in: work, hosts: 1, domain: other)
        defer { remote.stop() }
        let now = Int64(Date().timeIntervalSince1970)
        for (authority, peer, mesh) in [(home, other, local), (other, home, remote)] {
            let grant = try authority.federate(FederationTerms(peer: peer.trustAnchor, allVMs: true, notBefore: now - 60, notAfter: now + 86_400),
                                               after: nil, now: now)
            for client in mesh.clients {
                _ = try await client.call("federation.publish", ControlTypes.PublishFederationGrant(grant: grant.serialized),
                                          as: ControlTypes.FederationGrantInfo.self)
            }
        }
        var rows: [Row] = []
        for round in 0..<options.rounds {
            for path in ["intra", "cross"] {
                let name = "xd-\(path)-\(round)"
                let spec = MigrationBenchmark.spec(MigrationBenchmark.Options(kernel: options.kernel, initrd: options.initrd), name: name,
                                                   arguments: ["hm.work=heartbeat"])
                var sized = spec
                sized.memoryMiB = options.memoryMiB
                _ = try await local.source.call("vm.create", ControlTypes.CreateVM(spec: sized, start: true), as: VMInfo.self)
                try await MigrationBenchmark.waitForGuest(console: {
                    try await local.source.call("vm.console", ControlTypes.Console(vm: name, lines: 200), as: ControlTypes.Text.self).text
                }, dirty: false)
                let started = ContinuousClock.now
                let report: MigrationReport
                if path == "intra" {
                    report = try await local.source.call("migrate", ControlTypes.Migrate(vm: name, to: .address(HostPort(host: "127.0.0.1", port: local.ports[1])),
                                                                                        settings: MigrationSettings()), as: MigrationReport.self)
                    _ = try await local.destination.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
                } else {
                    report = try await local.source.call("migrate.domain", ControlTypes.MigrateAcrossDomains(
                        vm: name, domain: "other", via: "127.0.0.1:\(remote.ports[0])", settings: MigrationSettings()), as: MigrationReport.self)
                    _ = try await remote.source.call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
                }
                let row = Row(path: path, totalMs: (ContinuousClock.now - started).wholeMilliseconds, downtimeMs: report.downtimeMs)
                log("\(path) round \(round + 1): total \(row.totalMs) ms (the agent's own figure \(report.totalMs) ms), downtime \(row.downtimeMs) ms")
                rows.append(row)
            }
        }
        return rows
    }
}
