public import Logging

/// The source side of a QEMU migration: configures QEMU, starts the migration to a URI, polls
/// progress, and carries out the convergence ladder's directives.
///
/// The URI is wherever the stream should go: the destination QEMU's socket for a direct
/// migration, or a local unix socket served by the agent's tunnel.
public struct OutgoingMigration: Sendable {
    /// The source QEMU.
    public let qmp: QMPClient
    /// Capabilities and parameters.
    public let settings: MigrationSettings
    /// The convergence policy.
    public let policy: ConvergenceLadder.Policy
    /// How long to wait between two `query-migrate` polls, from the last sample.
    public var pollSchedule = ProgressPollSchedule()
    private let logger: Logger

    /// A source-side driver for the QEMU behind `qmp`.
    public init(qmp: QMPClient, settings: MigrationSettings = MigrationSettings(), policy: ConvergenceLadder.Policy = ConvergenceLadder.Policy(),
                logger: Logger = Logger(label: "hostmesh.hypervisor.migration")) {
        self.qmp = qmp
        self.settings = settings
        self.policy = policy
        self.logger = logger
    }

    /// Sets capabilities and parameters. Must run while no migration is active.
    public func prepare() async throws(QMPError) {
        try await qmp.migrateSetCapabilities(settings.capabilities)
        try await qmp.migrateSetParameters(settings.sourceParameters)
    }

    /// Prepares, starts the migration to `uri` and follows it to the end.
    ///
    /// If the calling task is cancelled, the migration is cancelled too (unless post-copy has
    /// started) and `MigrationError.cancelled` is thrown: the guest stays on the source.
    ///
    /// With the `pause-before-switchover` capability set by the caller, the migration stops in
    /// `MigrationProgress.Phase.preSwitchover` until `onProgress` (or anyone) calls
    /// `QMPClient.migrateContinue()`; the ladder ignores that pause.
    ///
    /// - Parameter onProgress: called with every sample and the ladder's current rung.
    /// - Returns: the figures once QEMU reports `completed` (the source is then in `postmigrate`).
    /// - Throws: `MigrationError` (failed, aborted, cancelled) or `QMPError` (source QEMU gone).
    public func run(to uri: String,
                    onProgress: @Sendable (MigrationProgress, ConvergenceLadder.Rung) async -> Void = { _, _ in }) async throws -> MigrationResult {
        try await prepare()
        var ladder = ConvergenceLadder(policy: policy)
        logger.debug("migration starting", metadata: ["migration.uri": "\(uri)"])
        // Wake on every MIGRATION event as well as on the poll tick: the moment QEMU reports
        // `completed` the guest is stopped on the source, and every millisecond until the
        // caller hands over is guest downtime. Polling alone would add up to a poll interval.
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let events = qmp.events()
        // MIGRATION_PASS too (the same capability enables it): a new pass's first sample comes
        // at once, not up to a stretched poll interval (250 ms) later.
        let eventWaker = Task { for await event in events where event.name == "MIGRATION" || event.name == "MIGRATION_PASS" { wake.yield() } }
        // The poll's timer: one sleep per sample, as long as the schedule says after that sample.
        var ticker: Task<Void, Never>?
        defer {
            eventWaker.cancel()
            ticker?.cancel()
            wake.finish()
        }
        var wakeups = wakes.makeAsyncIterator()
        var postcopyRequested = false
        // The last sample taken while QEMU was still sending: the figures an abort reports.
        var lastSending: MigrationProgress?
        try await qmp.migrate(uri: uri)
        while true {
            let sample = try await MigrationProgress(qmp.queryMigrate())
            await onProgress(sample, ladder.rung)
            if sample.throughputBytesPerSecond > 0 { lastSending = sample }
            switch sample.phase {
            case .completed:
                let sample = try await settled(sample)
                logger.debug("migration completed", metadata: [
                    "migration.total_ms": "\(sample.totalTimeMs)", "migration.downtime_ms": "\(sample.downtimeMs ?? -1)",
                ])
                return MigrationResult(final: sample, ladder: ladder.history)
            case .failed:
                throw MigrationError.failed(reason: sample.error ?? "QEMU gave no reason", last: sample)
            case .cancelled:
                if ladder.rung == .aborted {
                    throw MigrationError.aborted(reason: abortReason(ladder, lastSending ?? sample), last: sample)
                }
                throw MigrationError.cancelled(last: sample)
            default:
                break
            }
            for directive in ladder.observe(sample) {
                try await carryOut(directive, sample: sample)
            }
            if settings.postcopyAllowed, let passes = settings.postcopyAfterPasses, sample.phase != .postcopy,
               sample.iteration >= passes, !postcopyRequested {
                logger.debug("post-copy after \(passes) pre-copy passes")
                postcopyRequested = true
                try await qmp.migrateStartPostcopy()
            }
            let interval = pollSchedule.interval(after: sample)
            ticker = Task { if (try? await Task.sleep(for: interval)) != nil { wake.yield() } } // cancelled: an event woke the loop first
            let woke = await wakeups.next() != nil
            ticker?.cancel()
            if !woke || Task.isCancelled {
                if sample.phase != .postcopy {
                    do { try await qmp.migrateCancel() } catch {
                        logger.error("cannot cancel QEMU's outgoing migration: it may go on until QEMU's stream ends", metadata: ["error": "\(error)"])
                    }
                }
                // For the report only: the last sample stands in for figures QEMU cannot give.
                let last = (try? await MigrationProgress(qmp.queryMigrate())) ?? sample
                throw MigrationError.cancelled(last: last)
            }
        }
    }

    /// QEMU 7.2 sets the state to `completed` a moment before it computes total-time and
    /// downtime (migration_calculate_complete runs after the state change), so a poll in
    /// between reads zeros: re-read until the figures are there (bounded: ~1 s, in short steps: the caller's
    /// handover, and so the guest's pause, waits for this).
    private func settled(_ sample: MigrationProgress) async throws -> MigrationProgress {
        var sample = sample
        for _ in 0..<500 where sample.totalTimeMs == 0 {
            try? await Task.sleep(for: .milliseconds(2)) // cancelled: the bounded re-reads go on without the pause
            sample = try await MigrationProgress(qmp.queryMigrate())
        }
        return sample
    }

    private func carryOut(_ directive: ConvergenceLadder.Directive, sample: MigrationProgress) async throws(QMPError) {
        logger.debug("convergence ladder", metadata: [
            "migration.directive": "\(directive)", "migration.iteration": "\(sample.iteration)",
            "migration.dirty_mb_s": "\(Int(sample.dirtyBytesPerSecond / 1e6))",
        ])
        switch directive {
        case let .setDowntimeLimit(ms):
            try await qmp.migrateSetParameters(MigrationParameterSet(downtimeLimitMs: ms))
        case .startThrottling:
            guard settings.armAutoConverge else { return }
            try await qmp.migrateSetParameters(settings.activeThrottle)
        case .startPostcopy:
            guard settings.postcopyAllowed else { return }
            try await qmp.migrateStartPostcopy()
        case .cancel:
            try await qmp.migrateCancel()
        }
    }

    /// Why the ladder gave up, with the figures that decide it: what the link moved against what
    /// the guest dirtied, and what was left to send, at the last sample QEMU was still sending.
    private func abortReason(_ ladder: ConvergenceLadder, _ sample: MigrationProgress) -> String {
        let budget = policy.budgetMs(ramBytes: sample.ramTotalBytes)
        let rungs = ladder.history.map(\.description).joined(separator: ", ")
        let moved = sample.throughputBytesPerSecond / 1e6, dirtied = sample.dirtyBytesPerSecond / 1e6
        let verdict = dirtied >= moved ? "faster than" : "too close to the rate"
        func mb(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }
        let why = switch ladder.abortCause {
        case .outrun?: "cannot converge without throttling (auto-converge) or post-copy, both off"
        case .hardLimit?: "did not converge within \(budget * policy.hardBudgetFactor) ms, \(policy.hardBudgetFactor)x its budget"
        case .budget?, nil: "did not converge within \(budget) ms and stopped gaining"
        }
        return "\(why) (rungs tried: \(rungs)): the link moved \(mb(moved)) MB/s and the guest dirtied "
            + "\(mb(dirtied)) MB/s, \(verdict) it could be sent, with \(mb(Double(sample.remainingBytes) / 1e6)) MB still to send"
    }
}
