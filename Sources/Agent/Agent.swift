public import ControlAPI
import Dashboard
import HA
import HostHealth
import Schedules
public import Hypervisor
public import Logging
import MeshIdentity
import Migration
import VirtualSwitch
public import MigrationService
public import SecureChannel
public import ServiceLifecycle
public import UnixSignals
public import Prometheus
import Telemetry

/// The hostmesh node: accepts secure channels from other agents (control messages and
/// migration streams), serves the local control socket, owns this host's VMs and migrates them.
public struct Agent: Service {
    /// Software identification sent in hellos.
    public static let software = "hostmesh 0.1.0"

    private var configuration: AgentConfiguration
    private let credentials: ChannelCredentials
    private let logger: Logger
    private let vmOptions: VMProcess.Options
    private let onListening: @Sendable (HostPort) -> Void
    private let seams: MigrationTestSeams
    private let metricsRegistry: PrometheusCollectorRegistry?
    private let reload: ConfigurationReload?

    /// An agent with loaded credentials. `onListening` is told the bound channel address;
    /// `seams` are for fault-injection tests only (production: none). `metricsRegistry` is the
    /// registry swift-metrics was bootstrapped with (by the executable), served at
    /// `metrics_listen`; nil: a registry of the agent's own, with the scrape-time figures only.
    /// `reload`: how SIGHUP reloads the configuration (nil: SIGHUP is not handled).
    public init(configuration: AgentConfiguration, credentials: ChannelCredentials, logger: Logger,
                vmOptions: VMProcess.Options = VMProcess.Options(), seams: MigrationTestSeams = MigrationTestSeams(),
                metricsRegistry: PrometheusCollectorRegistry? = nil, reload: ConfigurationReload? = nil,
                onListening: @escaping @Sendable (HostPort) -> Void = { _ in }) {
        self.configuration = configuration
        self.credentials = credentials
        self.logger = logger
        self.vmOptions = vmOptions
        self.seams = seams
        self.metricsRegistry = metricsRegistry
        self.reload = reload
        self.onListening = onListening
    }

    /// How long a graceful shutdown may take before the services still running are cancelled.
    /// Normally it takes the membership leave plus short drains; this bounds a part that hangs.
    static let gracefulShutdownLimit: Duration = .seconds(8)

    /// Runs the agent until its task is cancelled or an enclosing `ServiceGroup` shuts it down
    /// gracefully (see `run(gracefulShutdownSignals:)`).
    public func run() async throws {
        try await run(gracefulShutdownSignals: [])
    }

    /// Sets the agent up (store, VMs re-adopted, switch started, listeners bound, unfinished
    /// migrations found), then runs its services in one `ServiceGroup`, in dependency order,
    /// until one of `gracefulShutdownSignals` arrives, an enclosing group shuts it down, or its
    /// task is cancelled.
    ///
    /// Graceful shutdown stops the services in reverse order: the periodic loops, then the
    /// membership (leaving the mesh, bounded by its leave timeout), the greetings, the location
    /// publisher, the in-doubt retry loop, the control socket and the peer listener (each closes
    /// and gives its connections a short drain) and last the virtual switch. The VMs'
    /// QEMU processes keep running: the next agent re-adopts them.
    public func run(gracefulShutdownSignals: [UnixSignal]) async throws {
        var agent = self
        agent.configuration = try configuration.resolvingAdvertiseHost(logger: logger)
        var group = ServiceGroupConfiguration(services: try await agent.services(), gracefulShutdownSignals: gracefulShutdownSignals,
                                              logger: logger)
        group.maximumGracefulShutdownDuration = Self.gracefulShutdownLimit
        try await ServiceGroup(configuration: group).run()
        logger.info("agent stopped; its VMs keep running", metadata: ["mesh.host": "\(credentials.identity.hostID)"])
    }

    /// Sets the agent up and returns its services, each needing only the ones before it.
    private func services() async throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        // Trapped first: SIGHUP's default disposition ends the process.
        let hangups = reload == nil ? nil : await UnixSignalsSequence(trapping: .sighup)
        let store = try AgentStore(stateDirectory: configuration.stateDirectory)
        let vms = VMManager(store: store, stateDirectory: configuration.stateDirectory, options: vmOptions, logger: logger)
        var switchSettings = SwitchSettings()
        switchSettings.holdFramesDuringMoves = configuration.holdFramesDuringMoves
        let network = try AgentNetwork(hostID: credentials.identity.hostID, overlay: configuration.overlayListen,
                                       networks: configuration.networks, settings: switchSettings, logger: logger)
        try await network.start()
        do {
            return try await services(store: store, vms: vms, network: network, hangups: hangups)
        } catch {
            // Nothing runs yet: close what setup opened (an in-process agent would keep it otherwise).
            await network.stop()
            throw error
        }
    }

    private func services(store: AgentStore, vms: VMManager, network: AgentNetwork,
                          hangups: UnixSignalsSequence?) async throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let overlay = await network.overlayAddress().flatMap { $0.port }.map { HostPort(host: configuration.reachableHost(of: configuration.overlayListen), port: $0) }
        await vms.use(network: network)
        if configuration.leases {
            guard let executable = configuration.leaseKeeperExecutable else {
                throw AgentError.badConfiguration(path: "leases", reason: "leases = true needs the hostmesh executable to run lease keepers; start the agent with `hostmesh agent`")
            }
            await vms.use(leases: LeaseKeeping(executable: executable, hostID: credentials.identity.hostID, settings: configuration.leaseSettings,
                                               restartDefault: configuration.restart))
        }
        try await vms.recover()
        // Before anyone is served: storage moves the last run left unfinished end one way or the other.
        let storageMover = StorageMover(store: store, vms: vms, observer: seams.observer, logger: logger)
        try await storageMover.recover()
        let link = LinkSpeed.megabitsPerSecond(of: configuration.advertiseHost ?? configuration.channelListen.host)
        let limits = MigrationLimits(linkMegabits: link, incoming: configuration.maxIncomingMigrations,
                                     outgoing: configuration.maxOutgoingMigrations, incomingWithDisks: configuration.maxIncomingDiskMigrations,
                                     outgoingWithDisks: configuration.maxOutgoingDiskMigrations)
        logger.info("migration limits", metadata: ["migration.incoming_max": "\(limits.incoming)", "migration.outgoing_max": "\(limits.outgoing)",
                                                   "migration.incoming_disk_max": "\(limits.incomingWithDisks)",
                                                   "migration.outgoing_disk_max": "\(limits.outgoingWithDisks)",
                                                   "link.mbit_s": "\(link.map(String.init) ?? "unknown")"])
        let evidence = HandoverEvidence(store: store, credentials: credentials)
        let journal = MigrationJournal(store: store, hostID: credentials.identity.hostID, logger: logger, leases: configuration.leases,
                                       evidence: evidence)
        var migration = MigrationCoordinator.Configuration()
        migration.limits = limits
        let events = AgentEventHub(hostID: credentials.identity.hostID)
        migration.observer = EventPublishingObserver(inner: seams.observer, events: events)
        migration.qemuBinary = configuration.qemuBinary
        guard let congestionControl = configuration.streamCongestionChoice else {
            throw AgentError.badConfiguration(path: "configuration", reason: configuration.streamCongestionRefusal)
        }
        migration.streamCongestionControl = congestionControl
        // Asked once, off the event loops: loads the algorithm's module if it must, and says now
        // (not at the first migration across a distance) when the kernel refuses it.
        let congestionLogger = logger
        Task.detached(priority: .utility) { StreamCongestionControl.report(congestionControl, logger: congestionLogger) }
        migration.evidence = evidence
        let coordinator = MigrationCoordinator(journal: seams.wrapJournal(journal), vms: vms, ports: network, credentials: credentials,
                                               configuration: migration, logger: logger)
        // Before anyone is served: the VMs of unfinished migrations are off limits until recovered.
        let unfinished = try await coordinator.prepareRecovery()
        credentials.trust.retiredKeys.graceSeconds = configuration.keyGracePeriod
        // Before any listener: the keys seen rotated away before a restart stay in grace, or refused.
        let retiredKeys = try RetiredKeyService.wire(credentials.trust.retiredKeys, store: try RetiredKeyStore(store: store), logger: logger)
        // Before any listener: the stored revocation lists, so the first handshake refuses a revoked host.
        let revocations = RevocationKeeper(store: try RevocationStore(store: store), trust: credentials.trust,
                                           hostID: credentials.identity.hostID, logger: logger)
        let storedRevocations = try await revocations.loadStored()
        // The same for federation grants: the first handshake knows which domains are let in.
        let federation = FederationKeeper(store: FederationStore(store: store), trust: credentials.trust,
                                          domain: credentials.certificate.domain, logger: logger)
        let storedGrants = try await federation.loadStored()
        // And the domain key rotations: a learned domain key is trusted, a retired one refused, from the first handshake.
        let domainKeys = DomainKeyKeeper(store: DomainKeyStore(store: store), trust: credentials.trust, logger: logger)
        try await domainKeys.loadStored()
        let certificates = try CertificateDesk.load(stateDirectory: configuration.stateDirectory, identity: credentials.identity,
                                                    lifetime: configuration.certificateLifetime, logger: logger)
        // DRS rules, settings and maintenance (an evacuation under way goes on after a restart).
        let drsRecords = try await DRSRecordStore(store: store).load()
        // Before any listener: a dashboard whose token cannot be read or made stops the start.
        let dashboardToken = try configuration.dashboardListen.map { _ in
            try DashboardToken.loadOrCreate(path: StateDirectory(configuration.stateDirectory).dashboardToken)
        }
        let listen = configuration.channelListen
        let listener = try await SecureChannelListener.bind(
            host: listen.host, port: listen.port, configuration: SecureChannelConfiguration(credentials: credentials), logger: logger
        ) { session in
            guard StreamPurpose(rawValue: session.peer.purpose) != nil else { return .application }
            return MigrationStreamAcceptor.route(session) { peer, hello in
                // A host of a federated domain (Protocol.md §2.9, §6.10) is authorised by its
                // qualified name `host@domain`: never as a member whose host id it shares.
                try coordinator.authorizeStream(peer: peer, hello: hello)
            }
        }
        let control: ControlServer
        let membership: AgentMembership
        // What other hosts reach this one at: a wildcard listener is advertised by its address.
        let bound = HostPort(host: configuration.reachableHost(of: listen),
                             port: listener.localAddress?.port ?? listen.port)
        do {
            membership = try AgentMembership(configuration: configuration, credentials: credentials, channel: bound, logger: logger)
            control = try await ControlServer.bind(path: StateDirectory(configuration.stateDirectory).controlSocket, logger: logger)
        } catch {
            await listener.close()
            throw error
        }
        let ledger = OwnershipLedger(store: store, hostID: credentials.identity.hostID, logger: logger, leases: configuration.leases,
                                     trust: credentials.trust)
        let restarts = RestartSupervisor(vms: vms, hostID: credentials.identity.hostID, meshDefault: configuration.restart,
                                         settings: RestartSettings(limit: configuration.restartLimit,
                                                                   window: .seconds(configuration.restartWindowSeconds)),
                                         logger: logger)
        let takeovers = configuration.leases ? TakeoverSupervisor(store: store, vms: vms, membership: membership, hostID: credentials.identity.hostID,
                                                                  domain: credentials.certificate.domain, settings: configuration.leaseSettings,
                                                                  logger: logger) : nil
        let greetings = GreetingQueue()
        let stretchedLinks = StretchedLinkStore(store: store)
        let linker = StretchedOverlayLinker(network: network, credentials: credentials, overlay: overlay, channel: bound, links: stretchedLinks,
                                            logger: logger)
        // The gossip keyring's signed record (Protocol.md §4.17): the stored version, before any listener.
        let gossipKeyring = GossipKeyringKeeper(store: GossipKeyringStore(store: store), trust: credentials.trust,
                                                domain: credentials.certificate.domain, hostID: credentials.identity.hostID,
                                                membership: membership, initial: membership.initialKeyring, logger: logger)
        try await gossipKeyring.loadStored()
        await membership.wire(keyring: gossipKeyring)
        let peers = PeerLinks(credentials: credentials, network: network, channel: bound, overlay: overlay, logger: logger, ledger: ledger,
                              known: coordinator.peerAddresses, greetings: greetings, vms: vms, domainKeys: domainKeys, gossipKeyring: gossipKeyring,
                              measuredRoundTrip: { address, host, microseconds, acceptsFiller in
                                  await coordinator.measured(address, host: host, roundTrip: microseconds, acceptsFiller: acceptsFiller)
                              })
        let drs = DRSController(hostID: credentials.identity.hostID, domain: credentials.certificate.domain, configuration: configuration.drs,
                                store: DRSRecordStore(store: store), records: drsRecords, membership: membership, vms: vms, journal: journal,
                                coordinator: coordinator, events: events, observer: seams.observer, logger: logger)
        await vms.use(resourceCheck: { try await drs.checkNewVM($0) })
        await vms.use(cpuGroups: Self.cpuGroups(hostID: credentials.identity.hostID, stateDirectory: configuration.stateDirectory, logger: logger))
        await vms.use(memoryGroups: Self.memoryGroups(hostID: credentials.identity.hostID, stateDirectory: configuration.stateDirectory, logger: logger))
        await revocations.wire(membership: membership.service) { host in
            peers.known.withLockedValue { $0[host] = nil }
            await network.removePeer(host)
        }
        await federation.wire(membership: membership.service) { domain in
            // The grant ended: its links go, and are not dialled again after a restart either.
            do { try stretchedLinks.forget(domain: domain) } catch {
                logger.warning("cannot forget the stretched links of a domain whose grant ended: the next start skips them", metadata: [
                    "mesh.peer_domain": "\(domain)", "error": "\(error)"])
            }
            return await network.unlink(domain: domain)
        }
        await domainKeys.wire { await peers.broadcast($0) }
        await gossipKeyring.wire(broadcast: { await peers.broadcast($0, sameDomain: true) },
                                 send: { host, address, envelope in await peers.send(envelope, to: host, at: address, sameDomain: true) })
        let health = HealthMonitor(hostID: credentials.identity.hostID, store: store, vms: vms, drs: drs, membership: membership,
                                   settings: HealthTracker.Settings(), thresholds: HealthThresholds(), logger: logger)
        var scheduleRules = ScheduleBook.Rules()
        scheduleRules.grace = Int64(configuration.scheduleGrace)
        scheduleRules.minimumInterval = Int64(configuration.scheduleMinInterval)
        let schedules = ScheduleRunner(hostID: credentials.identity.hostID, controller: drs, vms: vms, migrations: journal,
                                       occurrences: OccurrenceJournal(store: store), coordinator: coordinator, membership: membership,
                                       rules: scheduleRules, logger: logger)
        let issuers = IssuerClient(credentials: credentials, desk: certificates, membership: membership, logger: logger)
        let rotator = KeyRotator(credentials: credentials, issuers: issuers, stateDirectory: StateDirectory(configuration.stateDirectory), logger: logger)
        let api = ControlHandler(vms: vms, coordinator: coordinator, membership: membership, credentials: credentials, listen: bound,
                                 ledger: ledger, journal: journal, restartDefault: configuration.restart,
                                 revocations: revocations, federation: federation, domainKeys: domainKeys, gossipKeyring: gossipKeyring, rotator: rotator, storage: storageMover, drs: DRSControlHandler(
                                     controller: drs, placement: InitialPlacement(controller: drs, vms: vms, credentials: credentials, membership: membership, logger: logger),
                                     restartDefault: configuration.restart),
                                 health: HealthControlHandler(controller: drs, monitor: health, membership: membership),
                                 schedules: ScheduleControlHandler(controller: drs, rules: scheduleRules), events: events,
                                 crossDomain: CrossDomainMigrator(coordinator: coordinator, vms: vms, credentials: credentials, linker: linker, logger: logger),
                                 network: network,
                                 relayTombstones: { if let tombstones = await peers.tombstoneEnvelope() { await peers.broadcast(tombstones, sameDomain: true) } })
        let metrics: MetricsEndpoint?
        do {
            metrics = try await bindMetrics(membership: membership, vms: vms, coordinator: coordinator, network: network, drs: drs)
        } catch {
            await control.close()
            await listener.close()
            throw error
        }
        logger.info("agent listening", metadata: [
            "mesh.host": "\(credentials.identity.hostID)", "mesh.domain": "\(credentials.certificate.domain)",
            "mesh.key": "\(credentials.identity.signingKey.publicKey.fingerprint)", "mesh.listen": "\(bound)",
        ])
        onListening(bound)
        var services: [(String, any Service)] = [
            ("virtual-switch", VirtualSwitchService(network: network)),
            ("peer-listener", PeerListenerService(listener: listener, handler: PeerConnectionHandler(
                coordinator: coordinator, peers: peers, membership: membership, vms: vms, certificates: certificates, drs: drs, domainKeys: domainKeys,
                crossDomain: CrossDomainMigrationGate(coordinator: coordinator, membership: membership, vms: vms, credentials: credentials,
                                                      linker: linker, logger: logger),
                logger: logger))),
            ("control", ControlService(server: control, handler: api)),
            ("migration-recovery", MigrationRecoveryService(coordinator: coordinator, unfinished: unfinished)),
            ("location-publisher", LocationPublisherService(network: network, peers: peers)),
            ("peer-greetings", PeerGreetingService(peers: peers, queue: greetings, initial: configuration.peers)),
            ("membership", MeshMembershipService(
                membership: membership, follower: MemberFollower(hostID: credentials.identity.hostID, peers: peers, logger: logger),
                seeds: configuration.join)),
            ("events", MembershipEventRelayService(relay: MembershipEventRelay(events: events), membership: membership.service)),
            ("restart-supervisor", RestartService(interval: .milliseconds(250)) { await restarts.tick() }),
            ("certificate-renewal", CertificateRenewalService(credentials: credentials, desk: certificates, membership: membership,
                                                              certificatePath: StateDirectory(configuration.stateDirectory).hostCertificate, logger: logger)),
            ("key-rotation", KeyRotationService(rotator: rotator, keyPath: StateDirectory(configuration.stateDirectory).hostKey,
                                                maximumAge: configuration.keyRotationAge, logger: logger)),
            ("revocations", RevocationService(keeper: revocations, membership: membership.service,
                                              stored: storedRevocations.map(\.serialized), logger: logger)),
            ("federation", FederationService(keeper: federation, membership: membership.service,
                                             stored: storedGrants.map(\.serialized), logger: logger)),
            ("stretched-links", StretchedLinkService(linker: linker, store: stretchedLinks, trust: credentials.trust,
                                                     domain: credentials.certificate.domain, hostID: credentials.identity.hostID, logger: logger)),
            ("retired-keys", retiredKeys),
            ("gossip-keyring", GossipKeyringService(keeper: gossipKeyring, membership: membership.service, interval: .seconds(2))),
            ("ownership-sync", OwnershipSyncService(interval: .seconds(2), records: { try await ledger.records() },
                                                    broadcast: { envelope in
                                                        // The tombstones go with the records (§6.10): a VM leaving the domain changes both.
                                                        if let tombstones = await peers.tombstoneEnvelope() { await peers.broadcast(tombstones, sameDomain: true) }
                                                        await peers.broadcast(envelope)
                                                    })),
            ("drs", DRSService(controller: drs, broadcast: { await peers.broadcast($0) })),
            ("health", HealthService(monitor: health)),
            ("schedules", ScheduleService(runner: schedules)),
            ("capacity-refresh", CapacityRefreshService(interval: .seconds(3)) {
                // A VM list that cannot be read counts as none running until the next refresh.
                let running = (try? await vms.list().filter { $0.state == "running" }.count) ?? 0
                await membership.refresh(runningVMs: running, migrationsInFlight: await coordinator.inFlight)
            }),
        ]
        if let takeovers {
            // Restart elsewhere (Protocol.md §9.2): one round per lease read period (500 ms).
            services.append(("takeover-supervisor", RestartService(interval: .milliseconds(500)) { await takeovers.tick() }))
        }
        if let metrics { services.append(("metrics", metrics)) }
        if let reload, let hangups {
            services.append(("configuration-reload", ConfigurationReloadService(reload: reload, hangups: hangups, initial: configuration, coordinator: coordinator,
                                                                                linkMegabits: link, logger: logger)))
        }
        if let dashboardListen = configuration.dashboardListen, let dashboardToken {
            // Last: it acts through the control socket, and stops first on shutdown.
            let settings = DashboardService.Settings(listen: dashboardListen, controlSocket: StateDirectory(configuration.stateDirectory).controlSocket,
                                                     token: dashboardToken)
            services.append(("dashboard", DashboardService(settings: settings, logger: logger)))
        }
        // Named explicitly: the group would otherwise describe each service by reflection,
        // which would print the credentials some of them hold.
        return services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0.1, serviceName: $0.0) }
    }
}

extension Agent {
    /// The Prometheus endpoint at `metrics_listen`, bound; nil when metrics are off.
    private func bindMetrics(membership: AgentMembership, vms: VMManager, coordinator: MigrationCoordinator,
                             network: AgentNetwork, drs: DRSController) async throws -> MetricsEndpoint? {
        guard let listen = configuration.metricsListen else { return nil }
        let registry = metricsRegistry ?? PrometheusCollectorRegistry()
        let collector = AgentMetricsCollector(registry: registry, membership: membership, vms: vms, coordinator: coordinator, network: network, drs: drs)
        do {
            return try await MetricsEndpoint.bind(host: listen.host, port: listen.port, registry: registry, logger: logger) { await collector.refresh() }
        } catch {
            throw AgentError.badConfiguration(path: "metrics_listen", reason: "cannot listen on \(listen): \(error)")
        }
    }
}

extension Agent: CustomStringConvertible {
    /// Short, and free of key material: service lifecycle logs it.
    public var description: String { "Agent(\(credentials.identity.hostID))" }
}
