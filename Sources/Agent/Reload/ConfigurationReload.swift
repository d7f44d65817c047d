public import Logging

/// How the agent reloads its configuration on SIGHUP: `load` reads it again as at start (the
/// file, then the command line's flags over it), `setLogLevel` changes the process's log level.
/// What can change while running: `log_level`, `max_incoming_migrations`,
/// `max_outgoing_migrations`, `max_incoming_disk_migrations`, `max_outgoing_disk_migrations`,
/// `stream_congestion_control`; any other change is logged as needing a restart.
public struct ConfigurationReload: Sendable {
    /// Reads the configuration again; throws (naming the file and the fix) when it is invalid.
    public var load: @Sendable () throws -> AgentConfiguration
    /// Applies a new log level to every logger of the process.
    public var setLogLevel: @Sendable (Logger.Level) -> Void

    /// A reload from `load`, applying levels with `setLogLevel`.
    public init(load: @escaping @Sendable () throws -> AgentConfiguration, setLogLevel: @escaping @Sendable (Logger.Level) -> Void) {
        self.load = load
        self.setLogLevel = setLogLevel
    }

    /// The keys `reloaded` reloads.
    static let reloadableKeys: Set<String> = ["log_level", "max_incoming_migrations", "max_outgoing_migrations", "max_incoming_disk_migrations",
                                                      "max_outgoing_disk_migrations", "stream_congestion_control"]

    /// The keys whose values differ between `old` and `new` (as TOML names), sorted.
    static func changedKeys(_ old: AgentConfiguration, _ new: AgentConfiguration) -> [String] {
        AgentConfiguration.CodingKeys.allCases.map(\.rawValue).filter { key in
            old.value(of: key) != new.value(of: key)
        }.sorted()
    }
}

extension AgentConfiguration {
    /// A key's value as text, to tell what changed (not a serialisation).
    func value(of key: String) -> String {
        switch CodingKeys(rawValue: key) {
        case .stateDirectory: stateDirectory
        case .channelListen: "\(channelListen)"
        case .peers: "\(peers)"
        case .logLevel: logLevel
        case .logFormat: logFormat
        case .qemuBinary: qemuBinary
        case .overlayListen: "\(overlayListen)"
        case .networks: "\(networks.sorted { $0.key < $1.key })"
        case .gossipListen: "\(gossipListen)"
        case .advertiseHost: "\(advertiseHost ?? "")"
        case .join: "\(join)"
        case .maxIncomingMigrations: "\(maxIncomingMigrations.map(String.init) ?? "default")"
        case .maxOutgoingMigrations: "\(maxOutgoingMigrations.map(String.init) ?? "default")"
        case .maxIncomingDiskMigrations: "\(maxIncomingDiskMigrations.map(String.init) ?? "default")"
        case .maxOutgoingDiskMigrations: "\(maxOutgoingDiskMigrations.map(String.init) ?? "default")"
        case .restart: "\(restart)"
        case .restartLimit: "\(restartLimit)"
        case .restartWindowSeconds: "\(restartWindowSeconds)"
        case .certificateLifetime: "\(certificateLifetime)"
        case .keyRotationAge: "\(keyRotationAge)"
        case .keyGracePeriod: "\(keyGracePeriod)"
        case .drsInterval: "\(drsInterval)"
        case .drsSyncInterval: "\(drsSyncInterval)"
        case .drsHold: "\(drsHold)"
        case .drsMaxConcurrentMoves: "\(drsMaxConcurrentMoves)"
        case .leases: "\(leases)"
        case .leaseRenewMs: "\(leaseRenewMs)"
        case .leaseFenceMs: "\(leaseFenceMs)"
        case .leaseTickMs: "\(leaseTickMs)"
        case .leaseExpiryMs: "\(leaseExpiryMs)"
        case .metricsListen: "\(metricsListen.map { "\($0)" } ?? "off")"
        case .membershipProfile: "\(membershipProfile)"
        case .wanRoundTripMs: "\(wanRoundTripMs)"
        case .scheduleGrace: "\(scheduleGrace)"
        case .scheduleMinInterval: "\(scheduleMinInterval)"
        case .dashboardListen: "\(dashboardListen.map { "\($0)" } ?? "off")"
        case .streamCongestionControl: streamCongestionControl
        case nil: ""
        }
    }
}
