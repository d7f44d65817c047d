import Foundation
import HA
import Logging
import MeshTime

/// Says in the agent's log, before a lease keeper fences, that a leased VM's renewals are nearing
/// the fence time (README, "Leases on shared storage"): when a renewal landed on a lease older
/// than `LeaseRenewalWatch.warnAfter`, or when no renewal has landed for that long (a write that
/// hangs). At most once a minute per VM: a storage that stays slow would otherwise fill the log.
struct LeaseRenewalMonitor {
    private var lastWarned: [String: ContinuousClock.Instant] = [:]
    static let quietFor: Duration = .seconds(60)

    /// Looks at every leased copy's keeper report; returns the warnings said (for tests).
    @discardableResult
    mutating func check(copies: [(id: String, name: String, runtime: String)], logger: Logger) -> [String] {
        var said: [String] = []
        lastWarned = lastWarned.filter { id, _ in copies.contains { $0.id == id } }
        for copy in copies {
            guard let renewals = LeaseKeeper.renewals(runtimeDirectory: copy.runtime) else { continue }
            let (report, written) = renewals
            // The keeper's own timings: it may have outlived an agent whose configuration changed.
            let warnAfter = report.warnAfter
            let sinceLanded = Duration.seconds(max(0, Date().timeIntervalSince(written)))
            let message: String
            if sinceLanded > warnAfter {
                message = "no lease renewal has landed for \(sinceLanded.roundedSeconds)"
            } else if report.longestStretch > warnAfter {
                message = "a lease renewal landed on a lease \(report.longestStretch.roundedSeconds) old"
                    + " (slowest write within the last minute: \(report.slowestWrite.roundedSeconds))"
            } else {
                continue
            }
            if let last = lastWarned[copy.id], ContinuousClock.now - last < Self.quietFor { continue }
            lastWarned[copy.id] = .now
            said.append(message)
            logger.warning("\(message): the VM's copy is killed when its lease gets \(report.fenceAfter.roundedSeconds) old; the shared storage is too slow for the lease timings",
                           metadata: ["vm.id": "\(copy.id)", "vm.name": "\(copy.name)", "lease.keeper-log": "\(copy.runtime)/lease-keeper.log"])
        }
        return said
    }
}

private extension Duration {
    /// "2.35 s".
    var roundedSeconds: String { String(format: "%.2f s", inSeconds) }
}
