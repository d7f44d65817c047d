import ControlAPI
import Foundation

/// `hostmesh bench storage --concurrent N`: N guests, each writing its disk log to its own local
/// disk, migrated at once through the tunnel (one source agent to one destination agent, within
/// the default limits of 4 migrations with local disks each way), against the same N migrated at
/// once by QEMU directly (N pairs of QEMUs, mirrors over unix sockets in clear), in each round.
/// Every guest is up and its quiet write latency sampled before any of the N starts; they start
/// together and the group's CPU (every process involved, agents included) is measured from that
/// moment until the last one ends, then shared out equally among the rows.
extension StorageBenchmark {
    static func runConcurrent(_ options: Options, mesh: LocalMesh, base: String, work: String, log: @Sendable (String) -> Void) async throws -> [Row] {
        let count = options.concurrent
        var rows: [Row] = []
        for round in 0..<options.rounds {
            for path in ["direct", "tunnel"] {
                let group = ConcurrentGroup(count: count, work: work)
                var batch = try await withThrowingTaskGroup(of: Row.self) { tasks in
                    for index in 1...count {
                        tasks.addTask {
                            do {
                                var row = path == "direct"
                                    ? try await runDirect(options, workload: "writing", base: base, work: work + "/direct-c\(index)-\(round)", group: group)
                                    : try await runTunnel(options, mesh: mesh, workload: "writing", base: base, work: work,
                                                          name: "storage-c\(index)-\(round)", group: group)
                                row.vm = index
                                return row
                            } catch {
                                // The others must not wait for this one at a barrier.
                                await group.start.breakAll()
                                await group.end.breakAll()
                                throw error
                            }
                        }
                    }
                    var rows: [Row] = []
                    for try await row in tasks { rows.append(row) }
                    return rows.sorted { ($0.vm ?? 0) < ($1.vm ?? 0) }
                }
                let cpu = await group.cpuSeconds() / Double(count)
                for index in batch.indices {
                    batch[index].concurrent = count
                    let bytes = batch[index].cpuSeconds > 0 ? batch[index].cpuSeconds * 1e9 / batch[index].cpuNsPerByte : 0
                    batch[index].cpuSeconds = cpu
                    batch[index].cpuNsPerByte = bytes > 0 ? cpu * 1e9 / bytes : 0
                    log(describe(batch[index], round: round))
                }
                rows += batch
            }
        }
        return rows
    }
}
