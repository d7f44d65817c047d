public import Logging

/// A QEMU→QEMU migration on one host over a unix socket, with no agent in the stream: the
/// "direct" reference the benchmark compares the tunnelled path against, and the simplest
/// end-to-end exercise of the migration mechanics.
public enum DirectMigration {
    /// Migrates `source` into a new QEMU started in `destinationDirectory` from the same spec
    /// and accelerator, over the destination's `incoming.sock`.
    ///
    /// On success the destination runs the guest and the source QEMU has been stopped. On any
    /// failure the destination QEMU is killed and the guest keeps running on the source.
    ///
    /// - Returns: the running destination and the migration's figures.
    public static func migrateLocally(
        source: VMProcess, destinationDirectory: VMRuntimeDirectory,
        settings: MigrationSettings = MigrationSettings(), policy: ConvergenceLadder.Policy = ConvergenceLadder.Policy(),
        tls: MigrationTLS? = nil, options: VMProcess.Options = VMProcess.Options(),
        logger: Logger = Logger(label: "hostmesh.hypervisor.migration"),
        onProgress: @Sendable (MigrationProgress, ConvergenceLadder.Rung) async -> Void = { _, _ in }
    ) async throws -> (destination: VMProcess, result: MigrationResult) {
        var options = options
        options.accelerator = source.record.accelerator
        options.memoryKiB = source.record.guestRAMKiB
        var logger = logger
        logger[metadataKey: "vm.id"] = "\(source.record.spec.id)"
        let destination = try await VMProcess.launch(spec: source.record.spec, directory: destinationDirectory,
                                                     mode: .incoming, options: options, logger: logger)
        do {
            let result = try await run(source: source, destination: destination, socketPath: destinationDirectory.incomingSocket,
                                       settings: settings, policy: policy, tls: tls, logger: logger, onProgress: onProgress)
            return (destination, result)
        } catch {
            await destination.stop(quitGrace: .seconds(1))
            throw error
        }
    }

    /// Migrates `source` into `destination` (a QEMU started with `QEMUCommandLine.Mode.incoming`)
    /// through the unix socket `socketPath`, then stops the source. With `tls`, the stream is
    /// QEMU's TLS with that pre-shared key (installed on both sides, removed from the source
    /// if the migration fails). `sourceURI`, when given, is where the source sends instead
    /// (`tcp:HOST:PORT` of a relay in front of `socketPath`: a benchmark across an emulated link).
    /// `incomingURI`, when given, is where the destination listens instead of `socketPath`, and
    /// where the source sends unless `sourceURI` says otherwise (`tcp:HOST:PORT` of a destination
    /// in another network namespace: a benchmark across a frame-level link).
    public static func run(
        source: VMProcess, destination: VMProcess, socketPath: String, sourceURI: String? = nil, incomingURI: String? = nil,
        settings: MigrationSettings = MigrationSettings(), policy: ConvergenceLadder.Policy = ConvergenceLadder.Policy(),
        tls: MigrationTLS? = nil,
        logger: Logger = Logger(label: "hostmesh.hypervisor.migration"),
        onProgress: @Sendable (MigrationProgress, ConvergenceLadder.Rung) async -> Void = { _, _ in }
    ) async throws -> MigrationResult {
        let uri = incomingURI ?? "unix:\(socketPath)"
        if let tls {
            try await tls.install(on: destination.qmp, as: .server)
            try await tls.install(on: source.qmp, as: .client)
        }
        let incoming = IncomingMigration(qmp: destination.qmp, settings: settings)
        try await incoming.listen(on: uri)
        let outgoing = OutgoingMigration(qmp: source.qmp, settings: settings, policy: policy, logger: logger)
        let result: MigrationResult
        do {
            result = try await outgoing.run(to: sourceURI ?? uri) { sample, rung in
                // In post-copy the guest must run on the destination (held paused by -S) to
                // fault its remaining pages in.
                if sample.phase == .postcopy, let status = try? await destination.qmp.queryStatus(), !status.running {
                    try? await destination.qmp.cont() // retried at the next sample while the guest is not running
                }
                await onProgress(sample, rung)
            }
        } catch {
            // The guest stays here: leave the source as it was before.
            if let tls { await tls.uninstall(from: source.qmp) }
            throw error
        }
        try await incoming.waitUntilRunning()
        await source.stop(quitGrace: .seconds(2))
        return result
    }
}
