/// Typed wrappers for the QMP commands Hostmesh uses (QEMU 7.2 QAPI schema).
extension QMPClient {
    private struct Empty: Codable {}

    /// `query-status`: whether vCPUs run, and the precise run state.
    public func queryStatus() async throws(QMPError) -> VMRunStatus {
        try await execute("query-status", returning: VMRunStatus.self)
    }

    /// `cont`: start or resume vCPUs.
    public func cont() async throws(QMPError) {
        try await execute("cont")
    }

    /// `stop`: pause vCPUs.
    public func stop() async throws(QMPError) {
        try await execute("stop")
    }

    /// `quit`: QEMU exits immediately (no guest shutdown). QEMU may close the socket before its
    /// answer arrives; that counts as success.
    public func quit() async throws(QMPError) {
        do {
            try await execute("quit")
        } catch .disconnected {
            return
        }
    }

    /// `system_powerdown`: press the ACPI power button (the guest decides what to do).
    public func systemPowerdown() async throws(QMPError) {
        try await execute("system_powerdown")
    }

    /// `query-kvm`: whether KVM is present on the host and used by this QEMU.
    public func queryKVM() async throws(QMPError) -> KVMInfo {
        try await execute("query-kvm", returning: KVMInfo.self)
    }

    /// `query-migrate`: the state and figures of the current or last migration.
    public func queryMigrate() async throws(QMPError) -> MigrationInfo {
        try await execute("query-migrate", returning: MigrationInfo.self)
    }

    /// `migrate`: start an outgoing migration to `uri` (e.g. `unix:/run/x.sock`, `tcp:host:port`).
    /// Returns once started; follow it with `queryMigrate` or MIGRATION events.
    public func migrate(uri: String) async throws(QMPError) {
        try await execute("migrate", arguments: .object(["uri": .string(uri)]))
    }

    /// `migrate-incoming`: on a QEMU started with `-incoming defer`, listen on `uri` for the stream.
    /// Returns once listening.
    public func migrateIncoming(uri: String) async throws(QMPError) {
        try await execute("migrate-incoming", arguments: .object(["uri": .string(uri)]))
    }

    /// `migrate-set-capabilities`. Only allowed while no migration runs.
    public func migrateSetCapabilities(_ capabilities: [MigrationCapability: Bool]) async throws(QMPError) {
        let list = capabilities.sorted { $0.key.rawValue < $1.key.rawValue }.map { capability, state in
            JSONValue.object(["capability": .string(capability.rawValue), "state": .bool(state)])
        }
        try await execute("migrate-set-capabilities", arguments: .object(["capabilities": .array(list)]))
    }

    /// `query-migrate-capabilities`: every capability and its state.
    public func queryMigrateCapabilities() async throws(QMPError) -> [MigrationCapability: Bool] {
        struct Entry: Decodable { var capability: MigrationCapability; var state: Bool }
        let entries = try await execute("query-migrate-capabilities", returning: [Entry].self)
        return Dictionary(entries.map { ($0.capability, $0.state) }, uniquingKeysWith: { $1 })
    }

    /// `migrate-set-parameters`. Allowed during a migration for downtime, bandwidth and throttle.
    public func migrateSetParameters(_ parameters: MigrationParameterSet) async throws(QMPError) {
        _ = try await execute("migrate-set-parameters", arguments: parameters, returning: Empty.self)
    }

    /// `query-migrate-parameters`, restricted to the parameters this project uses.
    public func queryMigrateParameters() async throws(QMPError) -> MigrationParameterSet {
        try await execute("query-migrate-parameters", returning: MigrationParameterSet.self)
    }

    /// `migrate_cancel`: abort an outgoing migration; the guest keeps running here.
    public func migrateCancel() async throws(QMPError) {
        try await execute("migrate_cancel")
    }

    /// `migrate-continue`: release a migration paused in `pre-switchover` (with the
    /// `pause-before-switchover` capability), once the agents are ready for the handover.
    public func migrateContinue() async throws(QMPError) {
        try await execute("migrate-continue", arguments: .object(["state": .string("pre-switchover")]))
    }

    /// `migrate-start-postcopy`: switch a running pre-copy migration to post-copy. Needs the
    /// `postcopy-ram` capability on both sides. After this, cancelling would lose the guest.
    public func migrateStartPostcopy() async throws(QMPError) {
        try await execute("migrate-start-postcopy")
    }

    /// `human-monitor-command`: run an HMP command (e.g. `info registers`) for diagnostics only;
    /// its output is free text with no stability guarantee.
    public func humanMonitorCommand(_ commandLine: String, timeout: Duration? = nil) async throws(QMPError) -> String {
        let result = try await execute("human-monitor-command", arguments: .object(["command-line": .string(commandLine)]), timeout: timeout)
        guard let text = result.stringValue else {
            throw .unexpectedResult(command: "human-monitor-command", expected: "String", detail: result.description)
        }
        return text
    }
}
