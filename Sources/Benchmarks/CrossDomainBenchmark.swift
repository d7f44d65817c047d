import Agent
import ControlAPI
import Foundation
import Hypervisor
import MeshTime
import MeshIdentity

/// `hostmesh bench cross-domain`: the same guest migrated inside one domain (two agents of domain
/// `bench`) and into another, federated domain (an agent of domain `other`, both grants in
/// force, the network stretched), alternating, in one run (Protocol.md §6.10, §8.9). A peer VM
/// on the source host pings the moving guest every 20 ms throughout: its longest gap between
/// replies across the move is the gap the source domain sees. Targets: cross-domain total <= 1.1x the
/// intra-domain one, downtime <= intra + 10 ms, peer gap - downtime <= 100 ms, the gap being the
/// switchover's (`switchoverGapMs`); the pre-copy stall is reported beside it (`PeerGapSplit`).
public enum CrossDomainBenchmark {
    /// One measured migration.
    public struct Row: Codable, Sendable {
        /// "intra" (inside the domain) or "cross" (into the federated domain).
        public var path: String
        /// From the migration request to the guest running there, ms (the cross-domain offer included).
        public var totalMs: Int64
        /// Guest pause, STOP to RESUME, ms.
        public var downtimeMs: Int64
        /// The longest a peer VM in the source domain (on the source host) waited between two
        /// ping replies from the guest across the move, ms: the longer of the two stalls below
        /// (its meaning since session 31; kept so figures compare across sessions).
        public var gapMs: Int
        /// The peer's longest gap ending at or after the source QEMU's STOP (`PeerGapSplit`): the
        /// switchover's, what "peer gap - downtime <= 100 ms" is about; -1 if not placed.
        public var switchoverGapMs: Int?
        /// The peer's longest gap that ended between the migration request and the STOP: the
        /// moving guest's stall at the start of pre-copy (QEMU 7.2 under TCG syncing its dirty
        /// bitmap page by page, `Scripts/precopy-stall.py`); -1 if not placed.
        public var precopyGapMs: Int?
        /// How long before the STOP that pre-copy gap ended, ms (nil when under 100 ms).
        public var precopyGapEndedBeforeStopMs: Int?
        /// The source agent's phases (`MigrationReport.phasesMs`: connect, prepare, transfer,
        /// handover, ms): QEMU's `migrate` starts the transfer, so a stall of QEMU's setup ends
        /// about the transfer's length before the STOP.
        public var phasesMs: [String: Int64]?
        /// The peer's longest gap before the move (from its start to the last reading before
        /// the migration), and over its whole life (what `gapMs` was before session 31), ms.
        public var gapBeforeMs: Int
        public var gapLifetimeMs: Int
        /// What each switch counted during the move (`switch.counters`, differences, those that
        /// changed), by host ("bench-a (source, peer)", "bench-b", "other-a").
        public var switches: [String: [String: Int64]] = [:]
        /// The switchover's points, ms after QEMU's STOP at the source (as `bench network`'s).
        public var timeline: [NetworkMigrationBenchmark.Run.TimelinePoint] = []
        /// Pings unanswered 3 s after they were sent, across the move.
        public var lostPings: Int = 0
        /// The peer's longest pause between two of its own ping requests across the move, ms
        /// (20 when it ran as it should): a gap the peer saw because it did not run itself.
        public var peerSendGapMs: Int = -1

        enum CodingKeys: String, CodingKey {
            case path
            case totalMs = "total_ms", downtimeMs = "downtime_ms", gapMs = "gap_ms", switchoverGapMs = "switchover_gap_ms",
                 precopyGapMs = "precopy_gap_ms", precopyGapEndedBeforeStopMs = "precopy_gap_ended_before_stop_ms", phasesMs = "phases_ms", gapBeforeMs = "gap_before_ms", gapLifetimeMs = "gap_lifetime_ms",
                 switches, timeline, lostPings = "lost_pings", peerSendGapMs = "peer_send_gap_ms"
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
        let recorder = SwitchoverTimelineRecorder()
        let local = try await LocalMesh.start(in: work, hosts: 2, domain: home, timeline: recorder)
        defer { local.stop() }
        let remote = try await LocalMesh.start(in: work, hosts: 1, domain: other, timeline: recorder)
        defer { remote.stop() }
        let now = Int64(Date().timeIntervalSince1970)
        let stretched = [FederationTerms.NetworkMapping(peerNetwork: "default", localNetwork: "default", stretched: true)]
        for (authority, peer, mesh) in [(home, other, local), (other, home, remote)] {
            let grant = try authority.federate(FederationTerms(peer: peer.trustAnchor, allVMs: true, networks: stretched,
                                                               notBefore: now - 60, notAfter: now + 86_400),
                                               after: nil, now: now)
            for client in mesh.clients {
                _ = try await client.call("federation.publish", ControlTypes.PublishFederationGrant(grant: grant.serialized),
                                          as: ControlTypes.FederationGrantInfo.self)
            }
        }
        var rows: [Row] = []
        for round in 0..<options.rounds {
            for (index, path) in ["intra", "cross"].enumerated() {
                // Each guest its own address and MAC: one that left the domain leaves a tombstone
                // on its MAC there (§6.10), so the next round's guest cannot reuse it.
                let name = "xd-\(path)-\(round)", host = 10 + 2 * round + index
                let ip = "10.77.0.\(host)", mac = String(format: "52:54:00:bd:00:%02x", host)
                var guest = VMSpecOptions(name: name, kernel: options.kernel)
                guest.memoryMiB = options.memoryMiB
                guest.initrd = options.initrd
                guest.workload = "heartbeat"
                guest.network = "default"
                guest.ip = ip + "/24"
                guest.mac = mac
                _ = try await local.source.call("vm.create", ControlTypes.CreateVM(spec: try guest.spec(id: UUID().uuidString.lowercased()), start: true),
                                                as: VMInfo.self)
                try await MigrationBenchmark.waitForGuest(console: {
                    try await local.source.call("vm.console", ControlTypes.Console(vm: name, lines: 200), as: ControlTypes.Text.self).text
                }, dirty: false)
                var peerOptions = VMSpecOptions(name: "peer-\(path)-\(round)", kernel: options.kernel)
                peerOptions.memoryMiB = 128
                peerOptions.initrd = options.initrd
                peerOptions.workload = "ping:\(ip)"
                peerOptions.network = "default"
                peerOptions.ip = "10.77.0.2/24"
                let peer = peerOptions.name
                let peerInfo = try await local.source.call("vm.create", ControlTypes.CreateVM(spec: try peerOptions.spec(id: UUID().uuidString.lowercased()), start: true),
                                                           as: VMInfo.self)
                let replies = { (text: String) in NetworkMigrationBenchmark.last(text, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "recv") } ?? 0 }
                let ready = try await NetworkMigrationBenchmark.waitFor(local.source, peer) { replies($0) > 20 }
                let before = replies(ready)
                guard NetworkMigrationBenchmark.last(ready, "PING \(ip)").flatMap({ NetworkMigrationBenchmark.field($0, "wgap_ms") }) != nil else {
                    throw ControlError.failed("the test guest is older than this benchmark (its PING lines have no wgap_ms=): rebuild it with `make guest`")
                }
                let gapBefore = NetworkMigrationBenchmark.last(ready, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "maxgap_ms") } ?? -1
                let clients = local.clients + remote.clients
                let names = ["bench-a (source, peer)", path == "intra" ? "bench-b (destination)" : "bench-b", path == "cross" ? "other-a (destination)" : "other-a"]
                let countersBefore = try await NetworkMigrationBenchmark.switchCounters(clients)
                // The peer's gap lines timed on the host's clock, to place them against QEMU's STOP.
                let peerLines = try ConsoleLineClock.pinger(ofQEMU: peerInfo.pid, ip: ip)
                defer { peerLines.stop() }
                _ = recorder.take()
                let requestedAt = Date().timeIntervalSince1970
                let started = ContinuousClock.now
                let report: MigrationReport
                if path == "intra" {
                    report = try await local.source.call("migrate", ControlTypes.Migrate(vm: name, to: .address(HostPort(host: "127.0.0.1", port: local.ports[1])),
                                                                                        settings: MigrationSettings()), as: MigrationReport.self)
                } else {
                    report = try await local.source.call("migrate.domain", ControlTypes.MigrateAcrossDomains(
                        vm: name, domain: "other", via: "127.0.0.1:\(remote.ports[0])", settings: MigrationSettings(), acceptNetworkChange: false),
                        as: MigrationReport.self)
                }
                let totalMs = (ContinuousClock.now - started).wholeMilliseconds
                // The gap is read from a line the peer printed once 40 more replies (800 ms at one
                // ping per 20 ms) came after the migration returned: the switchover is behind it.
                let done = replies(try await local.source.call("vm.console", ControlTypes.Console(vm: peer, lines: 100_000), as: ControlTypes.Text.self).text)
                let sentAtEnd = try await NetworkMigrationBenchmark.waitFor(local.source, peer) { _ in true }
                let sent = NetworkMigrationBenchmark.last(sentAtEnd, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "sent") } ?? 0
                let after = try await NetworkMigrationBenchmark.waitFor(local.source, peer) {
                    replies($0) > max(before, done) + 40 && (NetworkMigrationBenchmark.last($0, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "judged") } ?? 0) >= sent
                }
                let countersAfter = try await NetworkMigrationBenchmark.switchCounters(clients)
                // The gaps that ended after `ready` was read: the move's. The peer's `maxgap_ms`
                // (its whole life) also held its own start, a guest booted moments before.
                let gap = NetworkMigrationBenchmark.gapSince(ready, in: after, ip: ip)
                let gapLifetime = NetworkMigrationBenchmark.last(after, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "maxgap_ms") } ?? -1
                _ = try await (path == "intra" ? local.destination : remote.source).call("vm.stop", ControlTypes.VMReference(vm: name), as: VMInfo.self)
                _ = try await local.source.call("vm.stop", ControlTypes.VMReference(vm: peer), as: VMInfo.self)
                var row = Row(path: path, totalMs: totalMs, downtimeMs: report.downtimeMs, gapMs: gap, gapBeforeMs: gapBefore, gapLifetimeMs: gapLifetime)
                let unanswered = { (text: String) in NetworkMigrationBenchmark.last(text, "PING \(ip)").flatMap { NetworkMigrationBenchmark.field($0, "unanswered") } ?? 0 }
                row.lostPings = unanswered(after) - unanswered(ready)
                row.peerSendGapMs = NetworkMigrationBenchmark.gapSince(ready, in: after, ip: ip, field: "wsendgap_ms")
                peerLines.stop()
                row.phasesMs = report.phasesMs
                let points = recorder.take()
                if let stopAt = points.first(where: { $0.name == "source-qemu-stop" })?.at {
                    let split = PeerGapSplit(lines: peerLines.lines, ip: ip, requestedAt: requestedAt, stopAt: stopAt, downtimeMs: Double(report.downtimeMs))
                    row.switchoverGapMs = split.switchoverGapMs
                    row.precopyGapMs = split.precopyGapMs
                    row.precopyGapEndedBeforeStopMs = split.precopyGapEndedBeforeStopMs
                }
                row.timeline = SwitchoverTimelineRecorder.describe(points, from: "source-qemu-stop").map {
                    NetworkMigrationBenchmark.Run.TimelinePoint(point: $0.name, ms: ($0.ms * 10).rounded() / 10)
                }
                for host in clients.indices {
                    row.switches[names[host]] = NetworkMigrationBenchmark.counterChanges(countersBefore[host], countersAfter[host])
                }
                log("\(path) round \(round + 1): total \(row.totalMs) ms (the agent's own figure \(report.totalMs) ms), downtime \(row.downtimeMs) ms, "
                    + "peer's ping gap across the move \(gap) ms: at the switchover \(row.switchoverGapMs.map { "\($0) ms" } ?? "not placed"), in pre-copy \(row.precopyGapMs.map { "\($0) ms" } ?? "none placed")"
                    + (row.precopyGapEndedBeforeStopMs.map { " (ended \($0) ms before QEMU's STOP)" } ?? "")
                    + (report.phasesMs.map { phases in
                        " (agent's phases: " + phases.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value) ms" }.joined(separator: ", ") + ")"
                    } ?? "")
                    + " (longest before the move: \(gapBefore) ms; over the peer's life: \(gapLifetime) ms), lost pings \(row.lostPings), "
                    + "the peer's longest pause between two of its own requests \(row.peerSendGapMs) ms")
                log(NetworkMigrationBenchmark.timelineLine(row.timeline))
                for (host, changed) in row.switches.sorted(by: { $0.key < $1.key }) {
                    let listed = changed.filter { !$0.key.hasPrefix("overlay.datagrams") }.sorted { $0.key < $1.key }
                    log("  \(host): " + (listed.isEmpty ? "nothing counted" : listed.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))
                }
                rows.append(row)
            }
        }
        return rows
    }
}
