import ControlAPI
import Foundation
import LinkEmulator

extension MigrationBenchmark {
    /// `bench migrate` across a frame-level link between two lab sites: the tunnel's agents are
    /// processes at site A and site B, the direct path's QEMUs are launched at site A and site B
    /// (the source migrating to `tcp:` of the destination's address), and both paths' streams
    /// are end-to-end TCP connections through the same `FrameLink`, one path at a time,
    /// alternating, in one run. Rows carry `link: "frame"` and the frames the link's queue
    /// dropped during each migration.
    static func runAcrossSites(_ options: Options, link: DistanceLink, sites settings: SiteSettings,
                               log: @Sendable (String) -> Void) async throws -> [Row] {
        let work = NSTemporaryDirectory() + "hmx-bench-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) } // a temporary directory: leaving it is harmless
        let lab = try LabSites(script: settings.labScript, profile: link.profile)
        defer { lab.tearDown() }
        let agents = try await SiteAgents.start(binary: settings.agentBinary, sites: lab, in: work)
        defer { agents.stop() }
        log("sites \(lab.prefix): A at \(lab.address(1)), B at \(lab.address(2)), joined only by a frame link of "
            + "\(link.rttMs) ms RTT, \(link.rateMbit) Mbit/s")
        let floor = try aeadFloorSPerGB()
        var rows: [Row] = []
        var port = 7950 // the direct destination's listening port at site B: a fresh one per migration
        // The link publishes its counters every 50 ms: read them once the last frames are counted.
        func counters() async throws -> FrameLink.Counters {
            try await Task.sleep(for: .milliseconds(150))
            return lab.link.counters(aToB: true)
        }
        func measured(_ row: Row, from before: FrameLink.Counters) async throws -> Row {
            let after = try await counters()
            var row = row.over(link, kind: "frame")
            row.linkQueueDrops = after.droppedQueueFull - before.droppedQueueFull
            row.linkBytes = after.deliveredBytes - before.deliveredBytes
            return row
        }
        for workload in options.workloads {
            let arguments = workloadArguments(options, workload)
            for round in 0..<options.rounds {
                var before = try await counters()
                let direct = try await directOrFailed(workload, round: round, log: log) {
                    try await measured(runDirect(options, workload: workload, arguments: arguments, work: work + "/direct-\(workload)-\(round)",
                                                 sites: (lab, port)), from: before)
                }
                port += 1
                log("\(workload) direct  round \(round + 1): total \(direct.totalMs) ms, downtime \(direct.downtimeMs) ms, \(Int(direct.mbS)) MB/s, "
                    + String(format: "link use %.2f, ", direct.linkUse ?? 0) + "\(direct.linkQueueDrops ?? 0) frames dropped at the queue")
                rows.append(direct)
                before = try await counters()
                var tunnel = try await measured(runTunnel(options, source: agents.source, destination: agents.destination, workload: workload,
                                                          arguments: arguments, name: "bench-\(workload)-\(round)", to: agents.destinationChannel,
                                                          agentsCPU: { agents.cpuSeconds }), from: before)
                tunnel.aeadFloorSPerGB = floor
                tunnel.agentCPUOverFloor = tunnel.agentCPUSPerGB.map { $0 / floor }
                log("\(workload) tunnel  round \(round + 1): total \(tunnel.totalMs) ms (migration \(tunnel.migrationMs ?? 0) ms after its checklist), downtime \(tunnel.downtimeMs) ms, \(Int(tunnel.mbS)) MB/s, "
                    + String(format: "link use %.2f, ", tunnel.linkUse ?? 0) + "\(tunnel.linkQueueDrops ?? 0) frames dropped at the queue, "
                    + String(format: "agents %.3f s/GB, ", tunnel.agentCPUSPerGB ?? 0) + "phases \(tunnel.phasesMs ?? [:])")
                rows.append(tunnel)
            }
        }
        return rows
    }
}
