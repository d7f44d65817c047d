public import Logging
public import Membership
import MeshTime
public import NIOCore
public import NIOPosix
public import ServiceLifecycle
import ShellSupport

/// The membership shell of one agent (Protocol.md §4): owns a `MembershipInstance`, one UDP
/// socket and the core's timers; turns datagrams, timers and operator calls into core events
/// and carries out the directives the core returns, in order.
///
/// Everything runs on one event loop: datagrams are read, opened and handed to the core
/// there, timers fire there, directives are carried out there; the public methods hop onto
/// the loop. The core is called synchronously and never blocks; push-pull exchanges (the
/// injected `PushPullExchange`) run as child tasks of `run()`.
///
/// Lifecycle: `run()` (a swift-service-lifecycle `Service`) binds the socket, starts the core,
/// joins the configured seeds in the background and runs until its task is cancelled (abrupt
/// stop: no leave, peers will detect the failure) or a graceful shutdown is triggered (leave
/// gracefully, bounded by `leaveTimeout`, then stop). `start()` binds early when the caller
/// needs the bound address before `run()`. A stopped service cannot be started again.
public final class MembershipService: Sendable {
    /// How the service runs.
    public let configuration: MembershipServiceConfiguration
    /// The loop everything runs on.
    public let eventLoop: any EventLoop

    /// The loop-confined state, the hops onto the loop and the stopped promise.
    let runtime: LoopBoundShell<MembershipShellState, MembershipServiceError>
    let pushPull: PushPullExchange
    let logger: Logger
    /// The core's timeline; it starts when the service is created.
    let timeline: ShellTimeline
    let jobs: AsyncStream<PushPullJob>
    let jobSink: AsyncStream<PushPullJob>.Continuation
    /// The checked certificates claims are verified with (signed membership, Protocol.md §4.16).
    public let certificates = MemberCertificates()

    /// A service, not yet started.
    ///
    /// - Parameters:
    ///   - configuration: addresses, metadata, protocol settings, retry and timeouts.
    ///   - keyring: the gossip keyring (`GossipKeyringFile.parse` of the agent's key file).
    ///   - pushPull: carries a push-pull exchange over the secure channel to a peer.
    ///   - eventLoop: the loop the socket, the timers and the core run on.
    ///   - logger: debug-level protocol logs, rate-limited drop lines (`mesh.*` metadata).
    public init(
        configuration: MembershipServiceConfiguration, keyring: GossipKeyring, pushPull: @escaping PushPullExchange,
        eventLoop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
        logger: Logger = Logger(label: "hostmesh.gossip")
    ) {
        var configuration = configuration
        configuration.settings.datagramOverhead = GossipEnvelope.overhead
        self.configuration = configuration
        self.eventLoop = eventLoop
        self.pushPull = pushPull
        var logger = logger
        logger[metadataKey: "mesh.host"] = "\(configuration.memberID)"
        self.logger = logger
        timeline = .startingNow()
        runtime = LoopBoundShell(
            state: MembershipShellState(configuration: configuration, keyring: keyring), eventLoop: eventLoop, loopGone: .stopped)
        (jobs, jobSink) = AsyncStream.makeStream(of: PushPullJob.self, bufferingPolicy: .bufferingNewest(256))
    }

    // MARK: Lifecycle

    /// Binds the UDP socket and starts the core (announcing this member); returns the gossip
    /// address announced to peers. Calling it again returns the same address.
    @discardableResult
    public func start() async throws(MembershipServiceError) -> PeerAddress {
        let needsBind = try await runtime.onLoop { state throws(MembershipServiceError) -> Bool in
            switch state.phase {
            case .stopped: throw .stopped
            case .running, .starting: return false
            case .idle:
                state.phase = .starting
                return true
            }
        }
        guard needsBind else { return try await waitUntilRunning() }
        let channel: any Channel
        do {
            channel = try await bind()
        } catch {
            // Fails only if the loop is gone, and then there is no claim left to undo.
            try? await runtime.onLoop { state in if state.phase == .starting { state.phase = .idle } }
            throw error
        }
        return try await runtime.onLoop { state throws(MembershipServiceError) -> PeerAddress in
            guard state.phase == .starting else {
                channel.close(promise: nil)
                throw .stopped
            }
            return try self.startCore(channel: channel, state)
        }
    }

    /// Starts, joins the configured seeds, and runs until cancelled (abrupt stop) or until a
    /// graceful shutdown (leave, then stop).
    public func run() async throws {
        try await start()
        try await runtime.onLoop { state throws(MembershipServiceError) in
            guard !state.runClaimed else { throw .alreadyRunning }
            state.runClaimed = true
        }
        await withDiscardingTaskGroup { group in
            await withTaskCancellationHandler {
                await withGracefulShutdownHandler {
                    if !configuration.seeds.isEmpty {
                        group.addTask { await self.joinConfiguredSeeds() }
                    }
                    for await job in jobs {
                        group.addTask { await self.perform(job) }
                    }
                } onGracefulShutdown: {
                    self.beginLeave(thenStop: true)
                }
            } onCancel: {
                self.beginStop()
            }
            // The job stream ended: the service stopped. Abandon exchanges still in flight.
            group.cancelAll()
        }
        await runtime.waitUntilStopped()
    }

    /// Stops at once, without leaving: closes the socket, cancels timers, ends the event
    /// streams. Peers will suspect and then declare this member dead.
    public func stop() async {
        beginStop()
        await runtime.waitUntilStopped()
    }

    /// Leaves the mesh gracefully: stops probing and disseminates a leave announcement. Returns
    /// true once it has been disseminated, false if `leaveTimeout` ran out first (or the
    /// service is not running). The socket stays open until the service stops; a member that
    /// left cannot join again (start a new service).
    public func leave() async -> Bool {
        // Fails only once the service stopped: not running, so false, as documented.
        let future = try? await runtime.onLoop { state -> EventLoopFuture<Bool> in
            guard state.phase == .running, let instance = state.instance else {
                return self.eventLoop.makeSucceededFuture(false)
            }
            if instance.hasLeft { return self.eventLoop.makeSucceededFuture(true) }
            let promise = self.eventLoop.makePromise(of: Bool.self)
            state.leaveWaiters.append(promise)
            self.startLeave(state)
            return promise.futureResult
        }
        // The promise fails only when the service stops before the leave was disseminated: false.
        return (try? await future?.get()) ?? false
    }

    private func bind() async throws(MembershipServiceError) -> any Channel {
        let address = "\(configuration.bindHost):\(configuration.bindPort)"
        let receiveCapacity = max(2048, configuration.settings.maxDatagramSize + 1)
        do {
            // No SO_REUSEADDR: for UDP it would let a second agent bind the same port silently.
            // One byte more than the largest valid datagram (see `DatagramBootstrap.receiving`).
            return try await DatagramBootstrap.receiving(on: eventLoop, receiveCapacity: receiveCapacity) { buffer, source in
                self.onDatagram(buffer, from: source)
            }
                .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(clamping: configuration.socketBufferBytes))
                .channelOption(.socketOption(.so_sndbuf), value: SocketOptionValue(clamping: configuration.socketBufferBytes))
                .bind(host: configuration.bindHost, port: configuration.bindPort)
                .get()
        } catch {
            throw .bindFailed(address: address, reason: "\(error)")
        }
    }

    /// On the loop, with the socket bound: creates and starts the core.
    private func startCore(channel: any Channel, _ state: MembershipShellState) throws(MembershipServiceError) -> PeerAddress {
        let host = configuration.advertisedHost ?? configuration.bindHost
        guard !["0.0.0.0", "::", "[::]", ""].contains(host) else {
            channel.close(promise: nil)
            state.phase = .idle
            throw .advertisedAddressRequired(bindHost: configuration.bindHost)
        }
        let boundPort = channel.localAddress?.port ?? configuration.bindPort
        let address = PeerAddress(host: host, port: configuration.advertisedPort ?? UInt16(clamping: boundPort))
        var instance = MembershipInstance(
            id: configuration.memberID, address: address, metadata: state.metadata,
            settings: configuration.settings,
            random: SeededRandomGenerator(seed: configuration.randomSeed ?? UInt64.random(in: .min ... .max)),
            logger: logger,
            claims: configuration.signedClaims.map { CertifiedClaimAuthority(sign: $0.sign, certificates: certificates) })
        holdOwnCertificate(state)
        state.channel = channel
        state.localAddress = address
        state.phase = .running
        let directives = instance.start(now: now())
        state.instance = instance
        state.lastUpdate[configuration.memberID] = now().nanosecondsSinceOrigin
        logger.debug(
            "gossip started",
            metadata: ["mesh.gossip.address": "\(address)", "mesh.gossip.bound": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "mesh.gossip.keys": "\(state.keyring)"])
        execute(directives, state)
        return address
    }

    private func waitUntilRunning() async throws(MembershipServiceError) -> PeerAddress {
        while true {
            let address = try await runtime.onLoop { state throws(MembershipServiceError) -> PeerAddress? in
                switch state.phase {
                case .stopped: throw .stopped
                case .idle: throw .notStarted
                case .starting: return nil
                case .running: return state.localAddress
                }
            }
            if let address { return address }
            // Throws only when cancelled; the wait still ends when the start under way finishes
            // or fails (one bind), so it cannot spin for long.
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// On the loop: asks the core to leave (once) and arms the leave timeout (again if a new
    /// waiter arrives after an earlier timeout).
    func startLeave(_ state: MembershipShellState) {
        guard state.instance != nil else { return }
        if state.leaveTimer == nil {
            state.leaveTimer = eventLoop.scheduleTask(in: TimeAmount(configuration.leaveTimeout)) {
                self.finishLeave(completed: false, self.runtime.state)
            }
        }
        guard !state.leaveRequested else { return }
        state.leaveRequested = true
        if let directives = state.instance?.leave(now: now()) {
            execute(directives, state)
        }
    }

    /// On the loop: the leave completed (or timed out); wakes waiters, stops if asked to.
    func finishLeave(completed: Bool, _ state: MembershipShellState) {
        state.leaveTimer?.cancel()
        state.leaveTimer = nil
        let waiters = state.leaveWaiters
        state.leaveWaiters = []
        for waiter in waiters { waiter.succeed(completed) }
        if !completed { logger.debug("leave announcement not fully disseminated before the timeout") }
        if state.stopAfterLeave { stopOnLoop(state) }
    }

    /// Graceful shutdown: leave, then stop.
    func beginLeave(thenStop: Bool) {
        eventLoop.execute {
            let state = self.runtime.state
            guard state.phase == .running, let instance = state.instance, !instance.hasLeft else {
                self.stopOnLoop(state)
                return
            }
            state.stopAfterLeave = thenStop
            self.startLeave(state)
        }
    }

    func beginStop() {
        eventLoop.execute { self.stopOnLoop(self.runtime.state) }
    }

    func stopOnLoop(_ state: MembershipShellState) {
        guard state.phase != .stopped else { return }
        state.phase = .stopped
        for timer in state.timers.values { timer.cancel() }
        state.timers = [:]
        state.leaveTimer?.cancel()
        for waiter in state.leaveWaiters { waiter.succeed(false) }
        state.leaveWaiters = []
        jobSink.finish()
        for subscriber in state.subscribers.values { subscriber.finish() }
        state.subscribers = [:]
        logger.debug("gossip stopped")
        guard let channel = state.channel else {
            runtime.stopped(after: eventLoop.makeSucceededVoidFuture())
            return
        }
        state.channel = nil
        runtime.stopped(after: channel.close())
    }

    // MARK: Loop plumbing

    /// The current instant on the core's timeline.
    func now() -> MeshInstant { timeline.now() }
}

extension MembershipService: Service {}

