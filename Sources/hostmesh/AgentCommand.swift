import Agent
import ArgumentParser
import ControlAPI
import Foundation
import Hypervisor
import Logging
import Prometheus
import ServiceLifecycle
import Telemetry

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "agent", abstract: "Run the hostmesh agent on this host.")

    @Option(help: "TOML configuration file; flags override it.") var config: String?
    @Option(name: .customLong("state-dir"), help: "Host state directory (default /var/lib/hostmesh).") var stateDir: String?
    @Option(help: "TCP address for secure channels (default 0.0.0.0:7946).") var listen: String?
    @Option(name: .customLong("peer"), help: "An agent to contact at start (repeatable).") var peers: [String] = []
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String?
    @Option(help: "Log line format: text, logfmt or json (default text).") var logFormat: String?
    @Option(help: "QEMU binary (default qemu-system-x86_64 on PATH).") var qemu: String?
    @Option(help: "UDP address of the virtual switch overlay (default 0.0.0.0:7947).") var overlay: String?
    @Option(help: "UDP address for membership gossip (default 0.0.0.0:7948).") var gossip: String?
    @Option(help: "The address other hosts reach this one at (needed with wildcard listeners).") var advertise: String?
    @Option(name: .customLong("join"), help: "A member to join through at start (its channel address; repeatable).") var joins: [String] = []
    @Option(help: "Concurrent incoming migrations (default 4; 8 on a 10 Gbit/s link).") var maxIncomingMigrations: Int?
    @Option(help: "Concurrent outgoing migrations (default 4; 8 on a 10 Gbit/s link).") var maxOutgoingMigrations: Int?
    @Option(help: "Of the incoming migrations, those with local disks (default 4, at most --max-incoming-migrations).") var maxIncomingDiskMigrations: Int?
    @Option(help: "Of the outgoing migrations, those with local disks (default 4, at most --max-outgoing-migrations).") var maxOutgoingDiskMigrations: Int?
    @Option(help: "The mesh default for VMs whose QEMU dies unexpectedly: no or on-failure (default no).") var restart: String?
    @Option(help: "Restarts of one VM within the window before it is left failed (default 3).") var restartLimit: Int?
    @Option(help: "The window restarts are counted in, seconds (default 600).") var restartWindowSeconds: Int?
    @Option(help: "Seconds of validity of the host certificates this host issues, when it is an issuer (default 604800: 7 days).")
    var certificateLifetime: Int64?
    @Option(help: "Rotate this host's key once it is this many seconds old; 0 never (default 2592000: 30 days).")
    var keyRotationAge: Int64?
    @Option(help: "Seconds a peer's old key is still accepted after it rotated; then refused (default 3600).")
    var keyGracePeriod: Int64?
    @Option(help: "Seconds between DRS balancing rounds (default 60).") var drsInterval: Double?
    @Option(help: "Seconds between DRS record and load sends (default 2).") var drsSyncInterval: Double?
    @Option(help: "Seconds a VM that moved is left alone by balancing (default 300).") var drsHold: Double?
    @Option(help: "DRS moves under way in the whole mesh at once (default 4).") var drsMaxConcurrentMoves: Int?
    @Option(help: "Seconds after its time a scheduled occurrence whose executor was down still runs (default 300).") var scheduleGrace: Int?
    @Option(help: "Shortest interval of a repeating schedule, seconds (default 60).") var scheduleMinInterval: Int?
    @Flag(help: "Run a lease keeper beside every VM on shared storage (Protocol.md §9.2; default off).") var leases = false
    @Option(help: "Lease renew interval, ms (default 1000).") var leaseRenewMs: Int?
    @Option(help: "Lease fence time, ms (default 4000).") var leaseFenceMs: Int?
    @Option(help: "Lease tick, ms (default 250).") var leaseTickMs: Int?
    @Option(help: "Lease expiry, ms (default 8000).") var leaseExpiryMs: Int?
    @Option(help: "Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (default off).") var metricsListen: String?
    @Option(help: "Membership timings: lan or wan (Protocol.md §4.11.1; default lan).") var membershipProfile: String?
    @Option(name: .customLong("wan-rtt-ms"), help: "The largest round trip between members, ms, for the WAN profile (default 250).")
    var wanRoundTripMs: Int?
    @Option(help: "Congestion control of migration streams at distance: bbr, system, or an algorithm the kernel lists (Protocol.md §6.11; default bbr).")
    var streamCongestionControl: String?
    @Option(help: "Serve the web dashboard at this address, e.g. 127.0.0.1:9470 (default off; token: `hostmesh dashboard token`).")
    var dashboard: String?

    func run() async throws {
        let configuration = try loadConfiguration()
        guard let level = Logger.Level(rawValue: configuration.logLevel) else {
            throw ValidationError("log level \"\(configuration.logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        let credentials = try AgentCredentials.load(stateDirectory: configuration.stateDirectory)
        let levelControl = LogLevelControl(level)
        let format = LogLineFormat(rawValue: configuration.logFormat) ?? .text // validated by loadConfiguration
        LoggingSystem.bootstrap { label -> any LogHandler in
            switch format {
            case .text: ControlledLogHandler(inner: StreamLogHandler.standardError(label: label), control: levelControl)
            case .logfmt, .json: StructuredLogHandler(label: label, format: format, level: { levelControl.current })
            }
        }
        let logger = Logger(label: "hostmesh.\(credentials.identity.hostID)")
        var vmOptions = VMProcess.Options()
        vmOptions.binary = configuration.qemuBinary
        let hooks = TestHooks(stateDirectory: configuration.stateDirectory)
        TestParentWatch.start(stateDirectory: configuration.stateDirectory)
        // swift-metrics is bootstrapped once per process, and only when something serves it.
        let registry = configuration.metricsListen.map { _ in PrometheusCollectorRegistry() }
        if let registry { MetricsBootstrap.bootstrap(registry) }
        // SIGHUP reads the file and the flags again, as here.
        let command = self
        let reload = ConfigurationReload(load: { try command.loadConfiguration() }, setLogLevel: { levelControl.set($0) })
        let agent = Agent(configuration: configuration, credentials: credentials, logger: logger, vmOptions: vmOptions, seams: hooks.seams,
                          metricsRegistry: registry, reload: reload)
        // The agent runs its services in one ServiceGroup; these signals shut it down gracefully.
        try await agent.run(gracefulShutdownSignals: [.sigterm, .sigint])
    }

    /// The configuration file (if any) with the flags over it, validated.
    func loadConfiguration() throws -> AgentConfiguration {
        var configuration = try config.map { try AgentConfiguration(tomlFile: $0) } ?? AgentConfiguration()
        if let stateDir { configuration.stateDirectory = stateDir }
        if let listen { configuration.channelListen = try HostPort(parsing: listen) }
        if !peers.isEmpty { configuration.peers = try peers.map { try HostPort(parsing: $0) } }
        if let logLevel { configuration.logLevel = logLevel }
        if let logFormat { configuration.logFormat = logFormat }
        if let qemu { configuration.qemuBinary = qemu }
        if let overlay { configuration.overlayListen = try HostPort(parsing: overlay) }
        if let gossip { configuration.gossipListen = try HostPort(parsing: gossip) }
        if let advertise { configuration.advertiseHost = advertise }
        if !joins.isEmpty { configuration.join = try joins.map { try HostPort(parsing: $0) } }
        if let maxIncomingMigrations { configuration.maxIncomingMigrations = maxIncomingMigrations }
        if let maxOutgoingMigrations { configuration.maxOutgoingMigrations = maxOutgoingMigrations }
        if let maxIncomingDiskMigrations { configuration.maxIncomingDiskMigrations = maxIncomingDiskMigrations }
        if let maxOutgoingDiskMigrations { configuration.maxOutgoingDiskMigrations = maxOutgoingDiskMigrations }
        if let restart {
            guard let policy = VMSpec.RestartPolicy(rawValue: restart) else { throw ValidationError("--restart must be no or on-failure") }
            configuration.restart = policy
        }
        if let restartLimit { configuration.restartLimit = restartLimit }
        if let restartWindowSeconds { configuration.restartWindowSeconds = restartWindowSeconds }
        if let certificateLifetime { configuration.certificateLifetime = certificateLifetime }
        if let keyRotationAge { configuration.keyRotationAge = keyRotationAge }
        if let keyGracePeriod { configuration.keyGracePeriod = keyGracePeriod }
        if let drsInterval { configuration.drsInterval = drsInterval }
        if let drsSyncInterval { configuration.drsSyncInterval = drsSyncInterval }
        if let drsHold { configuration.drsHold = drsHold }
        if let drsMaxConcurrentMoves { configuration.drsMaxConcurrentMoves = drsMaxConcurrentMoves }
        if let scheduleGrace { configuration.scheduleGrace = scheduleGrace }
        if let scheduleMinInterval { configuration.scheduleMinInterval = scheduleMinInterval }
        if leases { configuration.leases = true }
        if let leaseRenewMs { configuration.leaseRenewMs = leaseRenewMs }
        if let leaseFenceMs { configuration.leaseFenceMs = leaseFenceMs }
        if let leaseTickMs { configuration.leaseTickMs = leaseTickMs }
        if let leaseExpiryMs { configuration.leaseExpiryMs = leaseExpiryMs }
        if let metricsListen { configuration.metricsListen = try HostPort(parsing: metricsListen) }
        if let membershipProfile {
            guard let profile = MembershipProfile(rawValue: membershipProfile) else { throw ValidationError("--membership-profile must be lan or wan") }
            configuration.membershipProfile = profile
        }
        if let wanRoundTripMs { configuration.wanRoundTripMs = wanRoundTripMs }
        if let streamCongestionControl { configuration.streamCongestionControl = streamCongestionControl }
        if let dashboard { configuration.dashboardListen = try HostPort(parsing: dashboard) }
        // The keeper is this same executable's `lease-keeper` subcommand.
        configuration.leaseKeeperExecutable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0] // no /proc: argv[0]
        try configuration.validate(source: config.map { "\($0) and the command line" } ?? "command line")
        return configuration
    }
}
