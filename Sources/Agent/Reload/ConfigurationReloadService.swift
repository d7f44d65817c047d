import Logging
import Migration
import MigrationService
import ServiceLifecycle
import UnixSignals

/// Reloads the configuration on SIGHUP (`systemctl reload hostmesh`): the log level, the
/// migration limits (a higher outgoing limit starts queued migrations) and the congestion
/// control of migration streams (for streams dialled from then on) take effect at once; a
/// configuration that does not load or validate changes nothing and is logged with the reason;
/// changes to other keys are logged as needing a restart.
struct ConfigurationReloadService: Service {
    let reload: ConfigurationReload
    /// SIGHUP, trapped before the agent listens: a reload asked for as soon as the control
    /// socket answers is queued, not lost (nor, under the default disposition, fatal).
    let hangups: UnixSignalsSequence
    /// The configuration in force (as started, then as last reloaded).
    let initial: AgentConfiguration
    let coordinator: MigrationCoordinator
    /// The link speed the default limits were derived from (nil: unknown).
    let linkMegabits: Int?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { [initial, hangups] in
            var current = initial
            for await _ in hangups {
                current = await apply(current)
            }
        }
    }

    /// Loads and applies the configuration; returns the one in force afterwards.
    private func apply(_ current: AgentConfiguration) async -> AgentConfiguration {
        let new: AgentConfiguration
        do { new = try reload.load() } catch {
            logger.error("configuration not reloaded: nothing changed", metadata: ["error": "\(error)"])
            return current
        }
        guard let level = Logger.Level(rawValue: new.logLevel) else { return current } // validated by `load`
        reload.setLogLevel(level)
        let limits = MigrationLimits(linkMegabits: linkMegabits, incoming: new.maxIncomingMigrations, outgoing: new.maxOutgoingMigrations,
                                     incomingWithDisks: new.maxIncomingDiskMigrations, outgoingWithDisks: new.maxOutgoingDiskMigrations)
        await coordinator.setLimits(limits)
        if let congestionControl = new.streamCongestionChoice { // validated by `load`
            coordinator.setStreamCongestionControl(congestionControl)
            if congestionControl != current.streamCongestionChoice { StreamCongestionControl.report(congestionControl, logger: logger) }
        }
        let changed = ConfigurationReload.changedKeys(current, new)
        let needRestart = changed.filter { !ConfigurationReload.reloadableKeys.contains($0) }
        logger.notice("configuration reloaded", metadata: [
            "config.changed": "\(changed.joined(separator: ","))", "log.level": "\(level)",
            "migration.incoming_max": "\(limits.incoming)", "migration.outgoing_max": "\(limits.outgoing)",
            "migration.incoming_disk_max": "\(limits.incomingWithDisks)", "migration.outgoing_disk_max": "\(limits.outgoingWithDisks)",
            "migration.stream_congestion_control": "\(new.streamCongestionControl)",
        ])
        if !needRestart.isEmpty {
            logger.warning("configuration changes that take effect only after a restart (systemctl restart hostmesh)",
                           metadata: ["config.restart_needed": "\(needRestart.joined(separator: ","))"])
        }
        // Keys that need a restart stay as they run: a later reload reports them again.
        var applied = current
        applied.logLevel = new.logLevel
        applied.maxIncomingMigrations = new.maxIncomingMigrations
        applied.maxOutgoingMigrations = new.maxOutgoingMigrations
        applied.maxIncomingDiskMigrations = new.maxIncomingDiskMigrations
        applied.maxOutgoingDiskMigrations = new.maxOutgoingDiskMigrations
        applied.streamCongestionControl = new.streamCongestionControl
        return applied
    }
}
