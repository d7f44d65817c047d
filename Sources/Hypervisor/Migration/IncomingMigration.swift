/// The destination side of a QEMU migration: a QEMU started with `-incoming defer`
/// (`QEMUCommandLine.Mode.incoming`) is configured, told where to listen, and watched until it
/// runs the guest.
public struct IncomingMigration: Sendable {
    /// The destination QEMU.
    public let qmp: QMPClient
    /// Must match the source's (multifd and post-copy capabilities in particular).
    public let settings: MigrationSettings
    /// How often the destination's state is polled.
    public var pollInterval: Duration = .milliseconds(20)

    /// A destination-side driver for the QEMU behind `qmp`.
    public init(qmp: QMPClient, settings: MigrationSettings = MigrationSettings()) {
        self.qmp = qmp
        self.settings = settings
    }

    /// Configures the destination and starts listening on `uri` (e.g. `unix:/run/vm/incoming.sock`).
    /// Returns once the listening socket exists, so the source may connect right away.
    public func listen(on uri: String) async throws(QMPError) {
        try await qmp.migrateSetCapabilities(settings.capabilities)
        try await qmp.migrateSetParameters(settings.destinationParameters)
        try await qmp.migrateIncoming(uri: uri)
    }

    /// Waits until the destination has loaded the whole guest (pre-copy complete) and returns
    /// with it still paused (`-S`): for an agent that resumes it only after the handover is
    /// journaled.
    ///
    /// - Throws: `MigrationError.destinationFailed` if loading failed or the time ran out;
    ///   `QMPError.disconnected` if the destination QEMU exited.
    public func waitUntilLoaded(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let migration = try await qmp.queryMigrate()
            switch migration.status {
            case "failed":
                throw MigrationError.destinationFailed(reason: migration.errorDesc ?? "the incoming migration failed")
            case "completed":
                return
            default:
                try await Task.sleep(for: pollInterval)
            }
        }
        throw MigrationError.destinationFailed(reason: "the destination had not loaded the guest within \(timeout)")
    }

    /// Waits until the destination has loaded the whole guest, resumes it (the destination
    /// QEMU holds it paused, `-S`), and returns once it runs.
    ///
    /// - Throws: `MigrationError.destinationFailed` if the incoming migration failed or the time
    ///   ran out; `QMPError.disconnected` if the destination QEMU exited (QEMU exits when an
    ///   incoming migration cannot be loaded).
    @discardableResult
    public func waitUntilRunning(timeout: Duration = .seconds(60)) async throws -> VMRunStatus {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let migration = try await qmp.queryMigrate()
            let status = try await qmp.queryStatus()
            switch migration.status {
            case "failed":
                throw MigrationError.destinationFailed(reason: migration.errorDesc ?? "the incoming migration failed")
            case "completed" where status.running:
                return status
            case "completed":
                try await qmp.cont()
            default:
                break
            }
            try await Task.sleep(for: pollInterval)
        }
        throw MigrationError.destinationFailed(reason: "the guest was not running on the destination within \(timeout)")
    }
}
