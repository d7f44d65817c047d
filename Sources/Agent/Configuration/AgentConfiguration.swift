public import ControlAPI
import Foundation
public import Hypervisor
import MeshIdentity
import TOMLKit
public import HA
public import Membership
public import Migration

/// Which membership timings a mesh runs (Protocol.md §4.6).
public enum MembershipProfile: String, Sendable, Codable, Equatable, CaseIterable {
    /// memberlist's LAN defaults: probe every 1 s, 500 ms ack timeout.
    case lan
    /// Timings derived from the largest round trip between members (`wan_rtt_ms`).
    case wan
}

/// The agent's configuration: a `Sendable` struct with defaults for every field; loading from
/// TOML is a separate initialiser, and every field can also be set by a command-line flag.
///
///     state_dir = "/var/lib/hostmesh"
///     channel_listen = "0.0.0.0:7946"
///     peers = ["10.0.0.2:7946"]
///     log_level = "info"
///     log_format = "text"           # or "logfmt", "json"
///     qemu_binary = "qemu-system-x86_64"
///     overlay_listen = "0.0.0.0:7947"
///     gossip_listen = "0.0.0.0:7948"
///     advertise_host = "10.0.0.5"
///     join = ["10.0.0.2:7946"]
///     max_incoming_migrations = 4   # default: 8 on a 10 Gbit/s link or faster, else 4
///     max_outgoing_migrations = 4
///     max_incoming_disk_migrations = 4  # of the incoming, those with local disks (at most the above)
///     max_outgoing_disk_migrations = 4  # of the outgoing, those with local disks (at most max_outgoing)
///     restart = "on-failure"        # the mesh default for VMs that do not say; default "no"
///     restart_limit = 3             # restarts within the window before giving up
///     restart_window_seconds = 600
///     drs_interval = 60             # seconds between balancing rounds
///     drs_sync_interval = 2         # seconds between DRS record and load sends
///     drs_hold = 300                # seconds a moved VM is left alone
///     drs_max_concurrent_moves = 4  # DRS moves under way in the whole mesh
///     schedule_grace = 300          # seconds a missed occurrence may still run (§12.3)
///     schedule_min_interval = 60    # shortest --every, seconds
///     leases = true                 # lease keepers for VMs on shared storage (§9.2); default false
///     lease_renew_ms = 1000         # lease timings (defaults shown; checked as a whole)
///     lease_fence_ms = 4000
///     lease_tick_ms = 250
///     lease_expiry_ms = 8000
///     metrics_listen = "127.0.0.1:9464"  # Prometheus metrics at http://…/metrics; default off
///     membership_profile = "wan"    # "lan" (default) or "wan" (Protocol.md §4.11.1)
///     wan_rtt_ms = 150              # the largest round trip between members; WAN only, default 250
///     dashboard_listen = "127.0.0.1:9470"  # the web dashboard (README); default off
///     stream_congestion_control = "system"  # migration streams at distance: "bbr" (default), "system" or a name (§6.11)
///     [networks]
///     default = 1
public struct AgentConfiguration: Sendable, Codable, Equatable {
    /// Where host.key, host.cert and trust/ live, and the agent's durable state.
    public var stateDirectory: String = StateDirectory.defaultPath
    /// TCP address for secure channels from other agents.
    public var channelListen: HostPort = HostPort(host: "0.0.0.0", port: 7946)
    /// Agents to contact at start.
    public var peers: [HostPort] = []
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// How log lines are written: text, logfmt or json (Telemetry's `LogLineFormat`).
    public var logFormat: String = "text"
    /// The QEMU binary: a path, or a name looked up on PATH.
    public var qemuBinary: String = "qemu-system-x86_64"
    /// UDP address of the virtual switch's encrypted overlay.
    public var overlayListen: HostPort = HostPort(host: "0.0.0.0", port: 7947)
    /// Virtual networks, by name, with their segment ids (the same on every host of a domain).
    public var networks: [String: UInt32] = ["default": 1]
    /// UDP address for membership gossip.
    public var gossipListen: HostPort = HostPort(host: "0.0.0.0", port: 7948)
    /// The address other hosts reach this one at (required when listening on a wildcard).
    public var advertiseHost: String?
    /// Members to join through at start (their channel addresses).
    public var join: [HostPort] = []
    /// Concurrent migrations this host receives; nil: by link speed (MigrationLimits).
    public var maxIncomingMigrations: Int?
    /// Concurrent migrations this host sends; nil: by link speed.
    public var maxOutgoingMigrations: Int?
    /// Of the incoming migrations, those with local disks (each creates and fills whole images
    /// here); nil: 4. Never more than `maxIncomingMigrations` takes effect.
    public var maxIncomingDiskMigrations: Int?
    /// Of the outgoing migrations, those with local disks (each mirrors whole images from this
    /// host's storage); nil: 4. Never more than `maxOutgoingMigrations` takes effect.
    public var maxOutgoingDiskMigrations: Int?
    /// What to do when a VM's QEMU dies unexpectedly, for VMs whose spec does not say
    /// (Protocol.md §9.1). Set it the same on every host of a mesh: it is the mesh default.
    public var restart: VMSpec.RestartPolicy = .no
    /// Restarts of one VM within `restartWindowSeconds` before it is left failed: 1...100.
    public var restartLimit: Int = 3
    /// The window restarts are counted in, seconds: 10...86,400.
    public var restartWindowSeconds: Int = 600
    /// Lifetime, in seconds, of the host certificates this host issues when it is an issuer
    /// (`issuer.cert`, Protocol.md §2.7); default 7 days, 10 s to 400 days.
    public var certificateLifetime: Int64 = 7 * 86_400
    /// This host rotates its identity key once the key is this many seconds old (Protocol.md
    /// §2.8); 0 never. Default 30 days.
    public var keyRotationAge: Int64 = 30 * 86_400
    /// After a peer rotates its key, its old key is still accepted this many seconds, then
    /// refused at every handshake and on every channel still using it (Protocol.md §3.9).
    /// Default one hour, 0 to 30 days.
    public var keyGracePeriod: Int64 = 3_600
    /// The virtual switch holds frames for a VM during its move (Protocol.md §8.6.1). Not read
    /// from the file: false only for `hostmesh bench network`'s comparison with dropping them.
    public var holdFramesDuringMoves = true
    /// DRS timing and limits (`DRSConfiguration`).
    public var drsInterval: Double = DRSConfiguration().interval
    public var drsSyncInterval: Double = DRSConfiguration().syncInterval
    public var drsHold: Double = DRSConfiguration().hold
    public var drsMaxConcurrentMoves: Int = DRSConfiguration().maxConcurrentMoves
    /// Seconds after its time an occurrence whose executor was down still runs (Protocol.md §12.3).
    public var scheduleGrace: Int = 300
    /// Shortest interval of a repeating schedule, seconds.
    public var scheduleMinInterval: Int = 60

    /// The DRS settings of this configuration.
    public var drs: DRSConfiguration {
        var drs = DRSConfiguration()
        drs.interval = drsInterval
        drs.syncInterval = drsSyncInterval
        drs.hold = drsHold
        drs.maxConcurrentMoves = drsMaxConcurrentMoves
        return drs
    }

    /// Whether VMs on shared storage run under a lease keeper (Protocol.md §9.2): the host holds
    /// a lease file per VM copy and kills the copy when it cannot renew it. Default false.
    public var leases: Bool = false
    /// Lease timings, ms (Protocol.md §9.2); `validate` checks them with `LeaseSettings.validate`.
    public var leaseRenewMs: Int = 1000
    public var leaseFenceMs: Int = 4000
    public var leaseTickMs: Int = 250
    public var leaseExpiryMs: Int = 8000
    /// The `hostmesh` executable that runs `lease-keeper` (set by the executable, not in TOML).
    public var leaseKeeperExecutable: String?
    /// Where the web dashboard listens (plain HTTP, token required); nil: no dashboard. Give a
    /// loopback address unless a TLS proxy or an SSH tunnel fronts it.
    public var dashboardListen: HostPort?

    // MARK: Operability (issue 16): metrics

    /// Where the Prometheus endpoint (`GET /metrics`, plain HTTP) listens; nil (the default): off.
    /// Bind it to localhost or a management network: the figures name VMs and hosts.
    public var metricsListen: HostPort?

    /// The lease timings.
    public var leaseSettings: LeaseSettings {
        LeaseSettings(renewInterval: .milliseconds(leaseRenewMs), fenceAfter: .milliseconds(leaseFenceMs),
                      tickInterval: .milliseconds(leaseTickMs), expiry: .milliseconds(leaseExpiryMs))
    }

    /// The membership profile: `.lan` (memberlist's LAN defaults) or `.wan` (timings derived from
    /// `wanRoundTripMs`, Protocol.md §4.11.1). Every member of a mesh SHOULD use the same.
    public var membershipProfile: MembershipProfile = .lan
    /// The largest round trip between two members, ms (1...2,000), for the WAN profile.
    public var wanRoundTripMs: Int = 250

    /// The congestion control of migration streams' sending sockets at distance (Protocol.md
    /// §6.11): "bbr", "system" (the kernel's default, nothing set) or another algorithm's name.
    public var streamCongestionControl: String = StreamCongestionControl.Choice.default.description

    /// `streamCongestionControl` parsed; `validate` refuses one that does not parse.
    public var streamCongestionChoice: StreamCongestionControl.Choice? { StreamCongestionControl.Choice(parsing: streamCongestionControl) }

    /// Why `streamCongestionControl` is refused when it does not parse, and what to give instead.
    public var streamCongestionRefusal: String {
        "stream_congestion_control = \"\(streamCongestionControl)\": give \"bbr\" (the default), \"system\" (the kernel's "
            + "net.ipv4.tcp_congestion_control, nothing set) or an algorithm's name as net.ipv4.tcp_available_congestion_control lists it "
            + "(lower-case letters, digits and _, at most 15)"
    }

    /// The membership settings of this configuration.
    public var membershipSettings: MembershipSettings {
        switch membershipProfile {
        case .lan: MembershipSettings()
        case .wan: .wan(roundTrip: .milliseconds(wanRoundTripMs))
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case stateDirectory = "state_dir"
        case channelListen = "channel_listen"
        case peers
        case logLevel = "log_level"
        case logFormat = "log_format"
        case qemuBinary = "qemu_binary"
        case overlayListen = "overlay_listen"
        case networks
        case gossipListen = "gossip_listen"
        case advertiseHost = "advertise_host"
        case join
        case maxIncomingMigrations = "max_incoming_migrations"
        case maxOutgoingMigrations = "max_outgoing_migrations"
        case maxIncomingDiskMigrations = "max_incoming_disk_migrations"
        case maxOutgoingDiskMigrations = "max_outgoing_disk_migrations"
        case restart
        case restartLimit = "restart_limit"
        case restartWindowSeconds = "restart_window_seconds"
        case certificateLifetime = "certificate_lifetime"
        case keyRotationAge = "key_rotation_age"
        case keyGracePeriod = "key_grace_period"
        case drsInterval = "drs_interval"
        case drsSyncInterval = "drs_sync_interval"
        case drsHold = "drs_hold"
        case drsMaxConcurrentMoves = "drs_max_concurrent_moves"
        case scheduleGrace = "schedule_grace"
        case scheduleMinInterval = "schedule_min_interval"
        case leases
        case leaseRenewMs = "lease_renew_ms"
        case leaseFenceMs = "lease_fence_ms"
        case leaseTickMs = "lease_tick_ms"
        case leaseExpiryMs = "lease_expiry_ms"
        case metricsListen = "metrics_listen"
        case membershipProfile = "membership_profile"
        case wanRoundTripMs = "wan_rtt_ms"
        case dashboardListen = "dashboard_listen"
        case streamCongestionControl = "stream_congestion_control"
    }

    /// All defaults.
    public init() {}

    /// Missing keys keep their defaults; unknown keys are an error (a typo should not be silent).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = AgentConfiguration()
        stateDirectory = try c.decodeIfPresent(String.self, forKey: .stateDirectory) ?? defaults.stateDirectory
        channelListen = try c.decodeIfPresent(HostPort.self, forKey: .channelListen) ?? defaults.channelListen
        peers = try c.decodeIfPresent([HostPort].self, forKey: .peers) ?? defaults.peers
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? defaults.logLevel
        logFormat = try c.decodeIfPresent(String.self, forKey: .logFormat) ?? defaults.logFormat
        qemuBinary = try c.decodeIfPresent(String.self, forKey: .qemuBinary) ?? defaults.qemuBinary
        overlayListen = try c.decodeIfPresent(HostPort.self, forKey: .overlayListen) ?? defaults.overlayListen
        networks = try c.decodeIfPresent([String: UInt32].self, forKey: .networks) ?? defaults.networks
        gossipListen = try c.decodeIfPresent(HostPort.self, forKey: .gossipListen) ?? defaults.gossipListen
        advertiseHost = try c.decodeIfPresent(String.self, forKey: .advertiseHost)
        join = try c.decodeIfPresent([HostPort].self, forKey: .join) ?? defaults.join
        maxIncomingMigrations = try c.decodeIfPresent(Int.self, forKey: .maxIncomingMigrations)
        maxOutgoingMigrations = try c.decodeIfPresent(Int.self, forKey: .maxOutgoingMigrations)
        maxIncomingDiskMigrations = try c.decodeIfPresent(Int.self, forKey: .maxIncomingDiskMigrations)
        maxOutgoingDiskMigrations = try c.decodeIfPresent(Int.self, forKey: .maxOutgoingDiskMigrations)
        restart = try c.decodeIfPresent(VMSpec.RestartPolicy.self, forKey: .restart) ?? defaults.restart
        restartLimit = try c.decodeIfPresent(Int.self, forKey: .restartLimit) ?? defaults.restartLimit
        restartWindowSeconds = try c.decodeIfPresent(Int.self, forKey: .restartWindowSeconds) ?? defaults.restartWindowSeconds
        certificateLifetime = try c.decodeIfPresent(Int64.self, forKey: .certificateLifetime) ?? defaults.certificateLifetime
        keyRotationAge = try c.decodeIfPresent(Int64.self, forKey: .keyRotationAge) ?? defaults.keyRotationAge
        keyGracePeriod = try c.decodeIfPresent(Int64.self, forKey: .keyGracePeriod) ?? defaults.keyGracePeriod
        drsInterval = try Self.seconds(c, .drsInterval) ?? defaults.drsInterval
        drsSyncInterval = try Self.seconds(c, .drsSyncInterval) ?? defaults.drsSyncInterval
        drsHold = try Self.seconds(c, .drsHold) ?? defaults.drsHold
        drsMaxConcurrentMoves = try c.decodeIfPresent(Int.self, forKey: .drsMaxConcurrentMoves) ?? defaults.drsMaxConcurrentMoves
        scheduleGrace = try c.decodeIfPresent(Int.self, forKey: .scheduleGrace) ?? defaults.scheduleGrace
        scheduleMinInterval = try c.decodeIfPresent(Int.self, forKey: .scheduleMinInterval) ?? defaults.scheduleMinInterval
        leases = try c.decodeIfPresent(Bool.self, forKey: .leases) ?? defaults.leases
        leaseRenewMs = try c.decodeIfPresent(Int.self, forKey: .leaseRenewMs) ?? defaults.leaseRenewMs
        leaseFenceMs = try c.decodeIfPresent(Int.self, forKey: .leaseFenceMs) ?? defaults.leaseFenceMs
        leaseTickMs = try c.decodeIfPresent(Int.self, forKey: .leaseTickMs) ?? defaults.leaseTickMs
        leaseExpiryMs = try c.decodeIfPresent(Int.self, forKey: .leaseExpiryMs) ?? defaults.leaseExpiryMs
        metricsListen = try c.decodeIfPresent(HostPort.self, forKey: .metricsListen)
        dashboardListen = try c.decodeIfPresent(HostPort.self, forKey: .dashboardListen)
        if let profile = try c.decodeIfPresent(String.self, forKey: .membershipProfile) {
            guard let known = MembershipProfile(rawValue: profile) else {
                throw DecodingError.dataCorruptedError(forKey: .membershipProfile, in: c, debugDescription: "membership_profile = \"\(profile)\": it must be \"lan\" or \"wan\"")
            }
            membershipProfile = known
        }
        wanRoundTripMs = try c.decodeIfPresent(Int.self, forKey: .wanRoundTripMs) ?? defaults.wanRoundTripMs
        streamCongestionControl = try c.decodeIfPresent(String.self, forKey: .streamCongestionControl) ?? defaults.streamCongestionControl
    }

    /// A number of seconds written as TOML float or integer (`drs_interval = 60` is as good as `60.0`).
    private static func seconds(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Double? {
        if let whole = try? c.decodeIfPresent(Int.self, forKey: key) { return Double(whole) } // not an integer: read as a float below, whose error is the one to show
        return try c.decodeIfPresent(Double.self, forKey: key)
    }

    /// Checks values a type cannot: `source` names where they came from in the error.
    public func validate(source: String) throws(AgentError) {
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw .badConfiguration(path: source, reason: "log_level \"\(logLevel)\" is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard ["text", "logfmt", "json"].contains(logFormat) else {
            throw .badConfiguration(path: source, reason: "log_format \"\(logFormat)\" is not one of text, logfmt, json")
        }
        for (key, value) in [("max_incoming_migrations", maxIncomingMigrations), ("max_outgoing_migrations", maxOutgoingMigrations)] {
            if let value, !(1...64).contains(value) {
                throw .badConfiguration(path: source, reason: "\(key) = \(value): it must be between 1 and 64 (leave it out for the default: 4, or 8 on a 10 Gbit/s link)")
            }
        }
        for (key, disks, allKey, all, direction) in [("max_incoming_disk_migrations", maxIncomingDiskMigrations, "max_incoming_migrations", maxIncomingMigrations, "incoming"),
                                                     ("max_outgoing_disk_migrations", maxOutgoingDiskMigrations, "max_outgoing_migrations", maxOutgoingMigrations, "outgoing")] {
            guard let disks else { continue }
            guard (1...64).contains(disks) else {
                throw .badConfiguration(path: source, reason: "\(key) = \(disks): it must be between 1 and 64 (leave it out for the default: 4)")
            }
            if let all, disks > all {
                throw .badConfiguration(path: source, reason: "\(key) = \(disks) is above \(allKey) = \(all): migrations with local disks are some of the \(direction) ones; lower it to \(all) or less")
            }
        }
        guard (1...100).contains(restartLimit) else {
            throw .badConfiguration(path: source, reason: "restart_limit = \(restartLimit): it must be between 1 and 100 (default 3)")
        }
        guard (10...86_400).contains(restartWindowSeconds) else {
            throw .badConfiguration(path: source, reason: "restart_window_seconds = \(restartWindowSeconds): it must be between 10 and 86400 (default 600)")
        }
        guard (10...(400 * 86_400)).contains(certificateLifetime) else {
            throw .badConfiguration(path: source, reason: "certificate_lifetime = \(certificateLifetime): it must be between 10 s and 400 days (34560000 s); the default is 7 days (604800)")
        }
        guard keyRotationAge == 0 || (10...(3_650 * 86_400)).contains(keyRotationAge) else {
            throw .badConfiguration(path: source, reason: "key_rotation_age = \(keyRotationAge): it must be 0 (never) or between 10 s and 10 years; the default is 30 days (2592000)")
        }
        guard (0...(30 * 86_400)).contains(keyGracePeriod) else {
            throw .badConfiguration(path: source, reason: "key_grace_period = \(keyGracePeriod): it must be between 0 and 30 days (2592000 s); the default is 1 hour (3600)")
        }
        for (key, value) in [("lease_renew_ms", leaseRenewMs), ("lease_fence_ms", leaseFenceMs), ("lease_tick_ms", leaseTickMs), ("lease_expiry_ms", leaseExpiryMs)]
        where !(10...600_000).contains(value) {
            throw .badConfiguration(path: source, reason: "\(key) = \(value): it must be between 10 and 600000 ms")
        }
        do { try leaseSettings.validate() } catch { throw .badConfiguration(path: source, reason: "lease timings: \(error)") }
        guard (1...2_000).contains(wanRoundTripMs) else {
            throw .badConfiguration(path: source, reason: "wan_rtt_ms = \(wanRoundTripMs): it must be between 1 and 2000 ms (the largest round trip between two members; default 250)")
        }
        guard streamCongestionChoice != nil else { throw .badConfiguration(path: source, reason: streamCongestionRefusal) }
        try validateDRS(source: source)
    }

    /// Checks the DRS values.
    private func validateDRS(source: String) throws(AgentError) {
        for (key, value, range) in [("drs_interval", drsInterval, 1.0...86_400), ("drs_sync_interval", drsSyncInterval, 0.2...600), ("drs_hold", drsHold, 0.0...86_400)] {
            guard range.contains(value) else {
                throw .badConfiguration(path: source, reason: "\(key) = \(value): it must be between \(range.lowerBound) and \(range.upperBound) seconds")
            }
        }
        guard drsSyncInterval <= drsInterval else {
            throw .badConfiguration(path: source, reason: "drs_sync_interval (\(drsSyncInterval) s) must not exceed drs_interval (\(drsInterval) s): rounds decide on what the syncs bring")
        }
        guard (0...86_400).contains(scheduleGrace) else {
            throw .badConfiguration(path: source, reason: "schedule_grace = \(scheduleGrace): it must be between 0 and 86400 seconds")
        }
        guard (1...86_400).contains(scheduleMinInterval) else {
            throw .badConfiguration(path: source, reason: "schedule_min_interval = \(scheduleMinInterval): it must be between 1 and 86400 seconds")
        }
        guard (1...64).contains(drsMaxConcurrentMoves) else {
            throw .badConfiguration(path: source, reason: "drs_max_concurrent_moves = \(drsMaxConcurrentMoves): it must be between 1 and 64")
        }
    }

    /// Reads a TOML file.
    public init(tomlFile path: String) throws(AgentError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .badConfiguration(path: path, reason: "cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch {
            throw .badConfiguration(path: path, reason: "not valid TOML: \(error)")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = table.keys.first(where: { !known.contains($0) }) {
            throw .badConfiguration(path: path, reason: "unknown key \"\(unknown)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
        do { self = try TOMLDecoder().decode(AgentConfiguration.self, from: table) } catch {
            throw .badConfiguration(path: path, reason: "\(error)")
        }
        try validate(source: path)
    }
}
