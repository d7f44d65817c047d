import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import MeshTime
import MeshWire
import Migration
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel

/// The source side's environment (Protocol.md §6.4, §6.5): carries out `SourceMigration`'s
/// directives against the journal, the destination's channel, QEMU and the switch. The live
/// migration and recovery (after a restart, the in-doubt retry, `vm resolve`) use the same type;
/// recovery has no channel, stream or progress, and asks the peer on a fresh channel.
actor SourceRun: SourceMigrationEnvironment {
    /// What the live run has that recovery does not.
    struct Live {
        let address: HostPort
        let settings: MigrationSettings
        let process: VMProcess
        let progress: @Sendable (MigrationProgressUpdate) async -> Void
        /// Set for a migration into another domain (Protocol.md §6.10): whom to dial, how.
        let crossDomain: CrossDomainTarget?
        /// The control channel the checklist asked on, for the prepare (§6.9); nil: dial one.
        let checkedChannel: CheckedControlChannel?
        /// Open the stream's channels while the prepare is answered (§6.3).
        let openStreamsEarly: Bool
    }

    /// One local disk being mirrored (§6.7).
    struct LocalDisk: Sendable {
        let index: Int
        let path: String
        var image: Hostmesh_V1_DiskImage
        var report: DiskMirrorReport?
    }

    let context: MigrationContext
    /// The congestion control of this migration's streams at distance, read once: a reload
    /// meanwhile does not give its padding one algorithm and its stream another.
    let congestionControl: StreamCongestionControl.Choice
    let id: String
    let vmID: String
    let vmName: String
    /// The VM's epoch when the migration started: the destination takes +1, a take-back +2.
    let epoch: Int64
    let spec: VMSpec?
    let live: Live?
    private var logger: Logger
    /// The destination's host id once known, else the address it was reached at.
    private(set) var peer: String
    private let peerAddress: String?

    private var connection: HeldConnection?
    private var reader: EnvelopeReader?
    private var tunnel: OutgoingStreamTunnel?
    /// The tunnel the disk mirrors' NBD connections go through (only with local disks).
    private var nbdTunnel: OutgoingStreamTunnel?
    /// The VM's disks not on shared storage, by index in its spec: mirrored to the destination.
    private var localDisks: [LocalDisk]
    /// QEMU's outgoing migration, which goes on in post-copy after the commit has been sent.
    private var transfer: Task<Result<MigrationResult, any Error>, Never>?
    private var result: MigrationResult?
    private var stopped: Task<Double?, Never>?
    private var commitAnswer: Hostmesh_V1_MigrationCommitted?
    private let started = ContinuousClock.now
    private var phases: [String: Int64] = [:]
    private var switchoverStart: ContinuousClock.Instant?
    private var postcopyUsed = false

    /// What went wrong, worded for the operator (the first cause and what followed).
    private(set) var failure: String?
    /// The machine's verdict, once it ended without moving the guest.
    private(set) var outcome: SourceMigration.Failure?
    /// The figures, once it succeeded.
    private(set) var report: MigrationReport?
    /// True once the local copy has been released (the VM lives elsewhere).
    private(set) var released = false
    /// True once a durable write failed: the journal may not say what the machine did, so the
    /// VM stays marked until a later settling (retry, restart) agrees.
    private(set) var writeFailed = false
    /// The destination refused as busy (at its incoming limit) and said when to ask again.
    private(set) var destinationBusy: (reason: String, retryAfterMs: Int64)?

    /// A live migration of `vm` to the agent at `address`.
    init(context: MigrationContext, id: String, vm: OutgoingVM, address: HostPort, settings: MigrationSettings, crossDomain: CrossDomainTarget? = nil,
         checkedChannel: CheckedControlChannel? = nil, openStreamsEarly: Bool = true,
         progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) {
        self.context = context
        congestionControl = context.streamCongestionControl
        self.id = id
        vmID = vm.id
        vmName = vm.name
        epoch = vm.epoch
        spec = vm.spec
        localDisks = Self.localDisks(of: vm.spec)
        live = Live(address: address, settings: settings, process: vm.process, progress: progress, crossDomain: crossDomain,
                    checkedChannel: checkedChannel, openStreamsEarly: openStreamsEarly)
        peer = "\(address)"
        peerAddress = "\(address)"
        var log = context.logger
        log[metadataKey: "migration.id"] = "\(id)"
        log[metadataKey: "vm.id"] = "\(vm.id)"
        logger = log
    }

    /// Recovery of a journaled migration (no channel, no stream).
    init(context: MigrationContext, recovering row: JournaledMigration, spec: VMSpec?) {
        self.context = context
        congestionControl = context.streamCongestionControl
        id = row.id
        vmID = row.vmID
        vmName = row.vmName
        epoch = row.epoch ?? 1
        self.spec = spec
        localDisks = spec.map(Self.localDisks) ?? []
        live = nil
        peer = row.peer
        peerAddress = row.peerAddress
        var log = context.logger
        log[metadataKey: "migration.id"] = "\(row.id)"
        log[metadataKey: "vm.id"] = "\(row.vmID)"
        logger = log
    }

    private static func localDisks(of spec: VMSpec) -> [LocalDisk] {
        spec.disks.enumerated().filter { !$0.element.shared }.map { LocalDisk(index: $0.offset, path: $0.element.path, image: .init()) }
    }

    /// What happens to the VM's disks, for its machine: a recovery that cannot know the operator's
    /// choice keeps the source's copies.
    static func diskPolicy(_ spec: VMSpec?, keepSource: Bool) -> SourceMigration.Disks {
        guard let spec, spec.disks.contains(where: { !$0.shared }) else { return .shared }
        return .mirrored(keepSource: keepSource)
    }

    private var row: JournaledMigration {
        JournaledMigration(id: id, vmID: vmID, vmName: vmName, role: .source, peer: peer, peerAddress: peerAddress,
                           phase: "", epoch: epoch, error: nil, ended: false)
    }

    private func since(_ t: ContinuousClock.Instant) -> Int64 { (ContinuousClock.now - t).wholeMilliseconds }

    /// True when the destination is a host of another domain (`PeerName`): the VM's ports stay
    /// behind (a boundary that is not stretched carries no frame), and channels go to that domain.
    private var crossesDomains: Bool { live?.crossDomain != nil || PeerName.isCrossDomain(peer) }

    /// True when the VM's ports stay behind: it crosses into another domain on networks that are
    /// not stretched (§6.10), or recovery no longer knows (then stragglers are not forwarded).
    /// On stretched networks the ports move as inside a domain (§8.9).
    private var portsStayBehind: Bool { crossesDomains && !(live?.crossDomain?.stretched ?? false) }

    /// A channel configuration to the destination: for another domain, with its key from the
    /// grant, its name required, and the cross-domain purpose for control (Protocol.md §6.10).
    private func channelConfiguration(control: Bool) -> SecureChannelConfiguration {
        var configuration = SecureChannelConfiguration(credentials: context.credentials)
        if control { configuration.policy.purpose = "control" }
        if let target = live?.crossDomain {
            if control { configuration.policy.purpose = FederationGrant.migrationPurpose }
            configuration.policy.targetDomain = target.anchor
            configuration.policy.requiredDomain = target.anchor.name
            configuration.policy.expectedPeer = target.host
        }
        return configuration
    }

    private func note(_ text: String) {
        failure = failure.map { "\($0); \(text)" } ?? text
    }

    /// Ends the run's resources (tunnel, channel, watchers); the VM is left as the machine left it.
    func close() async {
        stopped?.cancel()
        transfer?.cancel() // finished already unless the run ended while QEMU was still sending
        await tunnel?.close()
        await nbdTunnel?.close()
        await connection?.close()
    }

    // MARK: - SourceMigrationEnvironment

    func journal(_ phase: SourceMigration.Phase) async throws {
        do {
            if phase == .requested {
                try await context.journal.beginSource(id: id, vmID: vmID, vmName: vmName, epoch: epoch, peerAddress: peerAddress ?? peer)
            } else {
                try await context.journal.setSourcePhase(id, phase, peer: peer == peerAddress ? nil : peer, error: failure, result: nil)
            }
        } catch {
            writeFailed = true
            logger.error("cannot journal the migration phase", metadata: ["migration.phase": "\(phase)", "error": "\(error)"])
            throw error
        }
        await context.observer.reached(.source(phase), migration: id, vm: vmID, name: vmName, peer: peer)
        if context.observer.cutsChannel(at: .source(phase)), let connection {
            // Fault injection: the channel drops here. Closing an open channel cannot fail in a way that matters.
            try? await connection.connection.channel.channel.close()
        }
    }

    func sendPrepare() async -> SourceMigration.Event? {
        guard let live, let spec else { return .peerLost("no channel to the destination in recovery") }
        await live.progress(.init(phase: "prepare", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal"))
        // Bad input is refused here, before anything is copied or the destination asked.
        if let refusal = await describeLocalDisks(settings: live.settings) { return .refused(refusal) }
        let control = channelConfiguration(control: true)
        var opened: HeldConnection?
        // The stream's channels the checklist opened: the tunnel's once it starts, closed here otherwise.
        var streamsOpened: PredialedChannels?
        do {
            // On the channel the checklist asked on, open already, if it still is; else on a new
            // one, the prepare leaving with the handshake's last message (`early`), a round trip
            // sooner: a refusal of this host is then the error of the answer's read, below.
            let checked = live.checkedChannel?.take()
            let connection: HeldConnection
            var reader: EnvelopeReader
            if let checked, checked.connection.connection.channel.channel.isActive {
                connection = checked.connection
                reader = checked.reader
                streamsOpened = checked.streams
            } else {
                checked?.streams?.close()
                await checked?.connection.close()
                connection = try await HeldConnection.hold(
                    SecureConnection.connect(host: live.address.host, port: live.address.port, configuration: control, logger: logger, early: true))
                reader = connection.reader()
            }
            opened = connection
            self.connection = connection
            peer = PeerName.of(connection.connection.peer, localDomain: context.domain)
            logger[metadataKey: "mesh.peer"] = "\(peer)"
            phases["connect"] = since(started)
            var prepare = Hostmesh_V1_AgentEnvelope()
            prepare.migrationPrepare.migrationID = id
            prepare.migrationPrepare.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            prepare.migrationPrepare.settingsJson = String(decoding: try JSONEncoder().encode(live.settings), as: UTF8.self)
            prepare.migrationPrepare.accelerator = live.process.record.accelerator.choice.rawValue
            prepare.migrationPrepare.memoryKib = UInt64(live.process.record.guestRAMKiB)
            prepare.migrationPrepare.epoch = UInt64(epoch)
            // Into another domain the port does not move: the destination creates it afresh (§6.10).
            prepare.migrationPrepare.portStates = portsStayBehind ? [] : try await context.ports?.exportPorts(spec).map { Data($0) } ?? []
            prepare.migrationPrepare.disks = localDisks.map(\.image)
            try await connection.outbound.write(EnvelopeWriter.frame(prepare))
            // The stream's channels open while the prepare is answered (Protocol.md §6.3); only
            // with one stream to carry now: a disk mirror's comes first, and multifd's spread.
            if live.openStreamsEarly, Self.opensStreamEarly(spec, live.settings) {
                do { tunnel = try await startStreamTunnel(predialed: streamsOpened, predial: true) } catch {
                    // openTransfer tries again, and fails the migration with the reason if it fails too.
                    logger.debug("the stream's tunnel did not start with the prepare", metadata: ["error": "\(error)"])
                }
            } else {
                streamsOpened?.close() // not opened for such a migration: nothing to carry yet
            }
            let answer = try await reader.next()
            self.reader = reader
            guard case .migrationPrepared(let prepared)? = answer?.body, prepared.migrationID == id else {
                // The channel ended under the early prepare: the catch below gives the destination's reason.
                if answer == nil, await connection.connection.failureReason() != nil { throw ChannelError.ioOnClosedChannel }
                note("\(peer) did not answer the migration request")
                return .peerLost("no answer")
            }
            phases["prepare"] = since(started) - (phases["connect"] ?? 0)
            guard prepared.error.isEmpty else {
                if prepared.retryAfterMs > 0 { destinationBusy = (prepared.error, Int64(prepared.retryAfterMs)) }
                note("\(peer) refused the migration: \(prepared.error)")
                return .refused(prepared.error)
            }
            return .admitted
        } catch {
            if tunnel == nil { streamsOpened?.close() } // the prepare failed before the tunnel took them
            // A refusal that arrived while the early prepare was on its way fails the write or the
            // read with a generic closed-channel error: the channel's own reason names the cause.
            let reason: any Error = if let opened, let refusal = await opened.connection.failureReason() { refusal } else { error }
            note("cannot reach the destination at \(live.address): \(reason)")
            return .peerLost("\(reason)")
        }
    }

    /// How many channels QEMU's one stream is striped over (Protocol.md §6.14) across a round trip
    /// of `microseconds` (0: unknown), as the control channel to the destination measured it: a
    /// count the settings give, or, when they give 0 or none, as many as the round trip calls for
    /// (1 on a LAN). Absent, not with post-copy (a striped stream cannot carry it) nor multifd
    /// (its channels already run side by side).
    static func stripes(_ settings: MigrationSettings, roundTrip microseconds: UInt32) -> Int {
        switch settings.stripes {
        case let chosen? where chosen != 0: Int(chosen)
        case nil where settings.postcopyAllowed || settings.multifdChannels != nil: 1
        default: StreamStriping.stripes(rttMicroseconds: microseconds, rateBytesPerSecond: settings.linkBytesPerSecond)
        }
    }

    /// Whether a migration of `spec` with `settings` carries one stream, whose channels can then
    /// open before QEMU connects (§6.3): no local disk (its mirror's stream comes first) and no
    /// multifd (its channels spread over threads).
    static func opensStreamEarly(_ spec: VMSpec, _ settings: MigrationSettings) -> Bool {
        localDisks(of: spec).isEmpty && settings.multifdChannels == nil
    }

    /// The tunnel QEMU's migration stream goes through, on `predialed`, the stream's channels
    /// the checklist opened; without them (across domains, or the checklist's channel closed),
    /// `predial` opens them now, before QEMU connects, padding and with filler as the
    /// checklist's would (§6.3), by the control channel's round trip and its host's word.
    private func startStreamTunnel(predialed: PredialedChannels? = nil, predial: Bool = false) async throws -> OutgoingStreamTunnel {
        guard let live else { throw ChannelError.ioOnClosedChannel }
        var streamConfiguration = channelConfiguration(control: false)
        streamConfiguration.policy.expectedPeer = PeerName.split(peer).host
        // One connection for both readings: the actor may change `connection` across the await.
        let control = connection?.connection
        let roundTrip: UInt32 = if let control { await OutgoingStreamTunnel.roundTrip(of: control.channel.channel) } else { 0 }
        let stripes = Self.stripes(live.settings, roundTrip: roundTrip)
        var opened = predialed
        if opened == nil, predial {
            opened = PredialedChannels(ahead: stripes, host: live.address.host, port: live.address.port, configuration: streamConfiguration,
                                       rttMicroseconds: roundTrip, rateBytesPerSecond: live.settings.linkBytesPerSecond,
                                       acceptsFiller: control?.session.peerAcceptsFiller == true,
                                       congestionControl: congestionControl, logger: logger)
        }
        // A tunnel that cannot start closes `opened` with its error.
        return try await OutgoingStreamTunnel.start(
            socketPath: context.vms.directory(for: vmID).path + "/out-\(id.prefix(8)).sock", migrationID: id,
            host: live.address.host, port: live.address.port, stripes: stripes, linkMbit: live.settings.linkMbit,
            congestionControl: congestionControl, predialed: opened, configuration: streamConfiguration, logger: logger)
    }

    func openTransfer() async -> SourceMigration.Event? {
        guard let live else { return .transferFailed("no stream in recovery") }
        var streamConfiguration = channelConfiguration(control: false)
        streamConfiguration.policy.expectedPeer = PeerName.split(peer).host
        do {
            if tunnel == nil { tunnel = try await startStreamTunnel() }
            if !localDisks.isEmpty {
                nbdTunnel = try await OutgoingStreamTunnel.start(
                    socketPath: context.vms.directory(for: vmID).path + "/nbd-\(id.prefix(8)).sock", migrationID: id,
                    host: live.address.host, port: live.address.port, purpose: .nbd, linkMbit: live.settings.linkMbit,
                    congestionControl: congestionControl, configuration: streamConfiguration, logger: logger)
            }
            return .transferReady
        } catch {
            note("cannot open the migration tunnel: \(error)")
            return .transferFailed("\(error)")
        }
    }

    /// How QEMU's transfer went, as `startTransfer` first learns it.
    private enum TransferOutcome: Sendable {
        case completed(MigrationResult)
        case failed(String)
        case postcopy
    }

    /// Across a distance, tells QEMU the bandwidth the kernel measures the stream's connections
    /// deliver, for its switchover decision (`SwitchoverBandwidth`, Protocol.md §6.11); on a LAN
    /// QEMU's own estimate stays. `state` goes nil when QEMU refuses the parameter (before 8.2).
    static func feedSwitchoverBandwidth(_ tunnel: OutgoingStreamTunnel, qmp: QMPClient, state: NIOLockedValueBox<SwitchoverBandwidth?>,
                                        since start: ContinuousClock.Instant, logger: Logger) async {
        guard let rtt = tunnel.roundTripMs, rtt * 1000 >= Double(StreamBufferSizing.distanceThresholdMicroseconds) else { return }
        let now = ContinuousClock.now - start
        guard state.withLockedValue({ $0?.due(at: now) ?? false }) else { return }
        let rate = await tunnel.deliveryRateBytesPerSecond()
        guard let figure = state.withLockedValue({ $0?.observe(rate, at: now) }) else { return }
        do {
            try await qmp.migrateSetParameters(MigrationParameterSet(availSwitchoverBandwidth: Int64(clamping: figure)))
            logger.debug("switchover bandwidth set", metadata: ["migration.switchover_bandwidth_mb_s": "\(Double(figure) / 1e6)"])
        } catch {
            if case let .commandFailed(_, _, description) = error, description.contains("avail-switchover-bandwidth") {
                // QEMU before 8.2 has no such parameter: its own estimate stays, as it always did there.
                state.withLockedValue { $0 = nil }
                logger.debug("QEMU takes no switchover bandwidth; its own estimate stays", metadata: ["error": "\(error)"])
            } else {
                // Not set: the next reading tries again (a QEMU gone fails the migration's own poll).
                state.withLockedValue { $0 = SwitchoverBandwidth(after: now) }
            }
        }
    }

    /// Puts QEMU back on its own switchover estimate before a transfer: the figure a source feeds
    /// (`feedSwitchoverBandwidth`) stays in that QEMU after a migration that failed, and a later
    /// one, on a LAN or to another host, must not inherit it.
    static func resetSwitchoverBandwidth(_ qmp: QMPClient) async {
        // QEMU before 8.2 refuses the parameter (there is nothing to reset); a QEMU gone fails the
        // migrate command that follows, with its own error.
        try? await qmp.migrateSetParameters(MigrationParameterSet(availSwitchoverBandwidth: 0))
    }

    func startTransfer() async -> SourceMigration.Event? {
        guard let live, let tunnel else { return .transferFailed("no stream in recovery") }
        let transferStart = ContinuousClock.now
        // QEMU timestamps its events: the guest's pause runs from STOP here to RESUME there.
        let events = live.process.qmp.events()
        // At STOP the switch starts holding the guest's frames (Protocol.md §8.6.1).
        let ports = portsStayBehind ? nil : context.ports, paused = spec, newHost = peer
        let traceLog = logger, traceVM = vmID
        stopped = Task {
            for await e in events where e.name == "STOP" {
                SwitchoverTrace.mark(traceLog, "source-qemu-stop", vm: traceVM, at: e.timestamp)
                if let ports, let paused {
                    await ports.guestPaused(paused, movingTo: newHost, stoppedAt: e.timestamp > 0 ? e.timestamp : nil)
                    SwitchoverTrace.mark(traceLog, "source-port-paused", vm: traceVM)
                }
                return e.timestamp
            }
            return nil
        }
        var policy = ConvergenceLadder.Policy()
        policy.allowPostcopy = live.settings.postcopyAllowed
        policy.allowThrottle = live.settings.armAutoConverge
        let (outcomes, report) = AsyncStream.makeStream(of: TransferOutcome.self)
        let migration = OutgoingMigration(qmp: live.process.qmp, settings: live.settings, policy: policy, logger: logger)
        let progress = live.progress, linkMbit = live.settings.linkMbit
        // Memory moves with the disks synchronised (the mirrors keep them in step): say so on every line.
        let diskTotal = localDisks.isEmpty ? nil : Int64(localDisks.reduce(UInt64(0)) { $0 + $1.image.virtualSize })
        let diskMode = localDisks.isEmpty ? nil : (localDisks.contains { $0.report?.mode == "write-blocking" } ? "write-blocking" : "background")
        let destination = "unix:" + tunnel.socketPath
        // With local disks QEMU pauses at the switchover, with the guest stopped and before it
        // sends the devices' state or gives up its images: the mirrors complete there (§6.7).
        let mirror = localDisks.isEmpty ? nil : DiskMirror(qmp: live.process.qmp, indices: localDisks.map(\.index))
        do { try await live.process.qmp.migrateSetCapabilities([.pauseBeforeSwitchover: mirror != nil]) } catch {
            note("cannot prepare QEMU's switchover: \(error)")
            return .transferFailed("\(error)")
        }
        let switchover = NIOLockedValueBox(MirrorSwitchover.waiting)
        let qmp = live.process.qmp
        let log = logger
        // The switchover's timeline: when QEMU paused (its vm_stop's drain and flush done), by
        // QEMU's clock, apart from when this agent saw it (`source-mirrors-completing`).
        let pausedMark = mirror == nil ? nil : Task { [pauses = qmp.events()] in
            for await e in pauses where e.name == "MIGRATION" && e.data["status"]?.stringValue == "pre-switchover" {
                SwitchoverTrace.mark(log, "source-qemu-pre-switchover", vm: traceVM, at: e.timestamp)
                return
            }
        }
        let observer = context.observer, (migrationID, vm, name, peerName) = (id, vmID, vmName, peer)
        await Self.resetSwitchoverBandwidth(qmp)
        let bandwidth = NIOLockedValueBox<SwitchoverBandwidth?>(SwitchoverBandwidth())
        // In post-copy the guest must run on the destination at once: the first post-copy sample
        // reports it, and QEMU goes on sending while the commit is on its way.
        transfer = Task {
            let outcome: Result<MigrationResult, any Error>
            do {
                outcome = .success(try await migration.run(to: destination) { sample, rung in
                    if sample.phase == .postcopy { report.yield(.postcopy) }
                    if sample.phase == .preSwitchover, let mirror, switchover.withLockedValue({ $0.begin() }) {
                        await observer.reached(.sourceSwitchover, migration: migrationID, vm: vm, name: name, peer: peerName)
                        await Self.completeMirrors(mirror, qmp: qmp, switchover: switchover, logger: log, vm: vm)
                    }
                    if sample.phase == .active {
                        await Self.feedSwitchoverBandwidth(tunnel, qmp: qmp, state: bandwidth, since: transferStart, logger: log)
                    }
                    await progress(.init(phase: sample.phase == .postcopy ? "postcopy" : "transfer", percent: sample.percent,
                                         mbPerSecond: sample.throughputBytesPerSecond / 1e6, dirtyMBPerSecond: sample.dirtyBytesPerSecond / 1e6,
                                         iteration: sample.iteration, rung: "\(rung)", diskCopiedBytes: diskTotal, diskTotalBytes: diskTotal, diskMode: diskMode,
                                         rttMs: tunnel.roundTripMs,
                                         linkUse: MigrationProgressUpdate.linkUse(mbPerSecond: sample.throughputBytesPerSecond / 1e6, linkMbit: linkMbit)))
                })
            } catch {
                outcome = .failure(error)
            }
            pausedMark?.cancel()
            switch outcome {
            case .success(let r): report.yield(.completed(r))
            case .failure(let e): report.yield(.failed("\(e)"))
            }
            report.finish()
            return outcome
        }
        var first: TransferOutcome = .failed("the transfer ended without a result")
        for await outcome in outcomes { first = outcome; break }
        phases["transfer"] = since(transferStart)
        switch first {
        case .postcopy:
            postcopyUsed = true
            return .postcopyStarted
        case .completed(let r):
            result = r
            switchoverStart = ContinuousClock.now
            await live.progress(.init(phase: "switchover", percent: 100, mbPerSecond: r.mbPerSecond, dirtyMBPerSecond: 0,
                                      iteration: r.iterations, rung: "normal"))
            return .transferCompleted
        case .failed(let why):
            let streams = tunnel.failures + (nbdTunnel?.failures ?? [])
            let mirrors = switchover.withLockedValue { $0.failure }.map { "; \($0)" } ?? ""
            note("migration failed before switchover: \(why)\(mirrors)" + (streams.isEmpty ? "" : " (streams: \(streams.joined(separator: "; ")))"))
            return .transferFailed(why + mirrors)
        }
    }

    /// At the switchover pause: completes the mirrors (the destination's images are then the
    /// source's, byte for byte) and lets QEMU go on; when they cannot complete, cancels QEMU's
    /// migration, so the guest stays here on its own images.
    private static func completeMirrors(_ mirror: DiskMirror, qmp: QMPClient, switchover: NIOLockedValueBox<MirrorSwitchover>,
                                        logger: Logger, vm: String) async {
        do {
            SwitchoverTrace.mark(logger, "source-mirrors-completing", vm: vm)
            try await mirror.complete()
            SwitchoverTrace.mark(logger, "source-mirrors-completed", vm: vm)
            switchover.withLockedValue { $0 = .completed }
            try await qmp.migrateContinue()
            SwitchoverTrace.mark(logger, "source-migrate-continued", vm: vm)
        } catch {
            switchover.withLockedValue { $0 = .failed("the disk mirrors did not complete at the switchover: \(error)") }
            logger.error("disk mirrors did not complete at the switchover; cancelling the migration", metadata: ["error": "\(error)"])
            do { try await qmp.migrateCancel() } catch {
                logger.error("cannot cancel QEMU's migration after the mirrors failed", metadata: ["error": "\(error)"])
            }
        }
    }

    // MARK: - Disks (§6.7)

    /// Reads each local disk's facts and checks them; returns the refusal (naming the disk and the
    /// fix) when one cannot be moved, before anything is copied.
    private func describeLocalDisks(settings: MigrationSettings) async -> String? {
        guard let spec, !localDisks.isEmpty else { return nil }
        if settings.postcopyAllowed {
            return "\(vmName) has local disks (\(localDisks.map(\.path).joined(separator: ", "))), which cannot move in post-copy: migrate it without --postcopy"
        }
        for (position, disk) in localDisks.enumerated() {
            do {
                // Another VM's disk moving with this one would leave that VM without it.
                if let other = try await context.vms.otherUser(ofDisk: disk.path, besides: vmID) {
                    return "disk \(disk.path) is also a disk of VM \(other): a disk used by two VMs cannot move with one of them; give each VM its own image"
                }
                if spec.disks[disk.index].readOnly {
                    return "disk \(disk.path) is read-only and not on shared storage: copy it to the same path on the destination and mark it shared, or make it writable"
                }
                let info = try await QEMUImageTool.info(disk.path)
                let format = try info.checked(against: spec.disks[disk.index])
                var image = Hostmesh_V1_DiskImage()
                image.index = UInt32(disk.index)
                image.format = format.rawValue
                image.virtualSize = info.virtualSize
                image.thin = info.thin
                image.allocatedBytes = info.allocatedBytes
                localDisks[position].image = image
            } catch {
                return "\(error)"
            }
        }
        return nil
    }

    func startMirrors() async -> SourceMigration.Event? {
        guard let live, let nbdTunnel else { return .mirrorFailed("no tunnel for the disk mirrors in recovery") }
        var mirror = DiskMirror(qmp: live.process.qmp, indices: localDisks.map(\.index))
        mirror.bufferBytes = live.settings.diskMirrorBufferBytes ?? DiskMirror.defaultBufferBytes
        // From the prepare's answer to the mirrors' start: the tunnels opened, their phases journaled.
        phases["open"] = since(self.started) - (phases["connect"] ?? 0) - (phases["prepare"] ?? 0)
        let started = ContinuousClock.now
        let total = localDisks.reduce(UInt64(0)) { $0 + $1.image.virtualSize }
        // Generous: a stalled mirror fails here; a slow one is worth waiting for (5 MB/s at worst).
        let limit = Duration.seconds(max(120, Int64(total / 5_000_000)))
        let progress = live.progress
        let settings = live.settings
        do {
            try await mirror.start(socket: nbdTunnel.socketPath, backgroundSpeed: settings.diskMirrorBackgroundBytesPerSecond)
            await context.observer.reached(.sourceMirrorsRunning, migration: id, vm: vmID, name: vmName, peer: peer)
            let stall = Duration.milliseconds(settings.diskMirrorStallMs ?? MigrationSettings.defaultDiskMirrorStallMs)
            let (jobs, switched) = try await mirror.waitUntilReady(timeout: limit, stallAfter: stall) { jobs in
                let done = jobs.reduce(UInt64(0)) { $0 + $1.offset }, all = max(1, jobs.reduce(UInt64(0)) { $0 + $1.len })
                let seconds = max(0.001, Double((ContinuousClock.now - started).wholeMilliseconds) / 1000)
                await progress(.init(phase: "mirror", percent: Double(done) * 100 / Double(all), mbPerSecond: Double(done) / seconds / 1e6,
                                     dirtyMBPerSecond: 0, iteration: 0, rung: "background",
                                     diskCopiedBytes: Int64(min(done, total)), diskTotalBytes: Int64(total)))
            }
            // Synchronised: the cap paced the bulk copy; what the guest writes from now on is copied uncapped.
            if settings.diskMirrorBackgroundBytesPerSecond != nil {
                for refusal in await mirror.uncap() {
                    logger.warning("a synchronised mirror keeps its copy-rate cap (the switchover may wait for its capped tail)",
                                   metadata: ["vm.id": "\(vmID)", "error": "\(refusal)"])
                }
            }
            let elapsed = since(started)
            for (position, disk) in localDisks.enumerated() {
                let copied = jobs.first { $0.device == DiskMirror.job(disk.index) }?.offset ?? 0
                let mode = switched.contains(disk.index) ? "write-blocking" : "background"
                if switched.contains(disk.index) {
                    logger.info("a disk mirror did not converge and switched to write-blocking mode", metadata: [
                        "disk.index": "\(disk.index)", "disk.stall_ms": "\(stall.wholeMilliseconds)"])
                }
                localDisks[position].report = DiskMirrorReport(
                    index: disk.index, path: disk.path, virtualBytes: Int64(disk.image.virtualSize), copiedBytes: Int64(copied),
                    msToReady: elapsed, mbPerSecond: elapsed > 0 ? Double(copied) / Double(elapsed) / 1000 : 0, mode: mode)
            }
            phases["mirror"] = elapsed
            logger.info("disk mirrors synchronised", metadata: ["migration.disks": "\(localDisks.count)", "migration.mirror_ms": "\(elapsed)"])
            return .mirrorsReady
        } catch {
            note("\(error)" + (nbdTunnel.failures.isEmpty ? "" : " (streams: \(nbdTunnel.failures.joined(separator: "; ")))"))
            return .mirrorFailed("\(error)")
        }
    }

    func cancelMirrors() async {
        guard !localDisks.isEmpty else { return }
        guard let process = await context.vms.process(vmID) else { return } // no QEMU: no mirror jobs either
        await DiskMirror(qmp: process.qmp, indices: localDisks.map(\.index)).abandon()
        logger.info("disk mirrors stopped; the source images stay the guest's")
    }

    func deleteSourceDisks() async {
        for disk in localDisks {
            do {
                // Fail closed: an image another VM here names, or whose users cannot be read, stays.
                if let other = try await context.vms.otherUser(ofDisk: disk.path, besides: vmID) {
                    logger.warning("the source's copy of a migrated disk stays: another VM uses it", metadata: ["disk.path": "\(disk.path)", "vm.other": "\(other)"])
                    continue
                }
                // The name goes now, the blocks in the background: the command does not wait for the file system.
                try ImageDeletion.remove(disk.path)
                logger.info("deleted the source's copy of a migrated disk", metadata: ["disk.path": "\(disk.path)"])
            } catch {
                logger.warning("cannot delete the source's copy of a migrated disk; it stays (the destination has its own)",
                               metadata: ["disk.path": "\(disk.path)", "error": "\(error)"])
            }
            // An image that arrived here by migration lives in a directory of its own: gone with its last image.
            let parent = (disk.path as NSString).deletingLastPathComponent
            if parent.hasPrefix(context.vms.storageRoot + "/") { rmdir(parent) }
        }
    }

    func sendCommit() async -> SourceMigration.Event? {
        guard let connection, let spec else { return .peerLost("no channel to the destination in recovery") }
        if switchoverStart == nil { switchoverStart = ContinuousClock.now }
        do {
            var commit = Hostmesh_V1_AgentEnvelope()
            commit.migrationCommit.migrationID = id
            // The ports stop here; their final state travels with the commit.
            commit.migrationCommit.portDeltas = portsStayBehind ? [] : try await context.ports?.freeze(spec).map { Data($0) } ?? []
            SwitchoverTrace.mark(logger, "source-port-frozen", vm: vmID)
            commit.migrationCommit.evidence = await commitEvidence()
            try await connection.outbound.write(EnvelopeWriter.frame(commit))
            // The last frame the guest sent before it fell silent, for the switchover's timeline:
            // read off this run (not awaited here, where the commit's answer is waited for next).
            if !portsStayBehind, logger.logLevel <= .info, let ports = context.ports {
                let traceLog = logger, traceVM = vmID
                Task {
                    if let last = await ports.lastFrameFromGuest(spec) {
                        SwitchoverTrace.mark(traceLog, "source-last-frame-from-guest", vm: traceVM, at: last)
                    }
                }
            }
            if postcopyUsed, let transfer {
                // The destination runs the guest and pulls what it lacks: QEMU here must go on
                // sending until post-copy ends. A failure now is the destination's to report.
                switch await transfer.value {
                case .success(let r): result = r
                case .failure(let error): logger.error("post-copy failed after the commit", metadata: ["error": "\(error)"])
                }
                phases["transfer"] = since(started) - (phases["connect"] ?? 0) - (phases["prepare"] ?? 0)
            }
            // A destination that neither answers nor drops the channel must not hold the guest
            // paused forever: after the timeout the channel is closed and the handover is in doubt.
            let channel = connection.connection.channel.channel
            let timeout = context.commitAnswerTimeout
            let watchdog = Task {
                try await Task.sleep(for: timeout)
                try await channel.close()
            }
            defer { watchdog.cancel() }
            guard var reader = self.reader else { return .peerLost("no answer channel") }
            let answer = try await reader.next()
            self.reader = reader
            guard case .migrationCommitted(let committed)? = answer?.body, committed.migrationID == id else {
                note("no commit confirmation from \(peer)")
                return .peerLost("no commit confirmation")
            }
            commitAnswer = committed
            phases["handover"] = since(switchoverStart!)
            if !committed.error.isEmpty {
                note("\(peer) could not run \(vmName): \(committed.error)")
                return .commitRefused(committed.error)
            }
            return .committed
        } catch {
            note("handover of \(vmName) to \(peer) is in doubt (\(error)); the guest stays paused here. `hostmesh vm resolve \(vmName)` shows the choices")
            return .peerLost("\(error)")
        }
    }

    /// The evidence for the destination's epoch (Protocol.md §6.12): none across domains (a host
    /// of another domain is named `host@domain`, which no statement can name; its records fence
    /// nothing here, and an in-doubt copy settles by recovery), and none when it cannot be signed
    /// (logged: the destination's record then fences nothing, the safe side).
    private func commitEvidence() async -> [Hostmesh_V1_OwnershipEvidenceLink] {
        guard !crossesDomains else { return [] }
        do { return try await context.evidence.commitEvidence(vm: vmID, epoch: epoch, to: peer, migration: id) } catch {
            logger.error("cannot sign the handover statement: the destination's ownership record will not fence this copy",
                         metadata: ["error": "\(error)"])
            return []
        }
    }

    func sendAbort(_ reason: String) async {
        var abort = Hostmesh_V1_AgentEnvelope()
        abort.migrationAbort.migrationID = id
        abort.migrationAbort.reason = reason
        do {
            if let connection {
                try await connection.outbound.write(EnvelopeWriter.frame(abort))
            } else {
                _ = try await context.ask(row, abort, expectAnswer: false)
            }
        } catch {
            // Best effort by design (§6.4): a destination that does not hear it discards its
            // copy when the channel ends, and answers `unknown`/`discarded` when asked.
            logger.info("abort not delivered to the destination", metadata: ["error": "\(error)"])
        }
    }

    func queryPeer() async -> SourceMigration.Event? {
        var query = Hostmesh_V1_AgentEnvelope()
        query.migrationQuery.migrationID = id
        do {
            guard case .migrationVerdict(let v)? = try await context.ask(row, query, expectAnswer: true)?.body, v.migrationID == id else {
                logger.warning("handover in doubt: the destination gave no verdict", metadata: ["mesh.peer": "\(peer)"])
                return nil
            }
            return .peerReports(Self.verdict(v))
        } catch {
            logger.warning("handover in doubt: the destination does not answer", metadata: ["mesh.peer": "\(peer)", "error": "\(error)"])
            return nil
        }
    }

    static func verdict(_ v: Hostmesh_V1_MigrationVerdict) -> DestinationMigration.Verdict {
        switch v.verdict {
        case .receiving: return .receiving
        case .committed: return .committed
        case .discarded: return .discarded(v.reason)
        case .unknown, .UNRECOGNIZED: return .unknown
        }
    }

    func reclaim() async throws {
        do { try await context.journal.reclaim(vm: vmID, epoch: epoch + 2) } catch {
            writeFailed = true
            logger.error("cannot journal taking the VM back; it stays paused", metadata: ["error": "\(error)"])
            throw error
        }
    }

    func resumeLocal() async {
        if let spec { await context.ports?.unfreeze(spec) }
        guard let process = await context.vms.process(vmID) else {
            logger.warning("the guest should run here but its QEMU is gone")
            return
        }
        do {
            await Self.endStuckTransfer(process.qmp, logger: logger)
            if try await !process.qmp.queryStatus().running { try await process.qmp.cont() }
            logger.info("the guest runs here")
        } catch {
            note("the guest could not be resumed here (\(error)); `hostmesh vm show \(vmName)` shows its state")
            logger.error("cannot resume the guest", metadata: ["error": "\(error)"])
        }
    }

    /// QEMU's own migration may still be under way when the guest is to resume here: paused at
    /// the switchover (`pre-switchover`) by a run whose agent died, nothing wakes it but a
    /// cancel, and a guest resumed beside it would refuse every later migration ("a migration is
    /// in progress"). Cancels it and waits (bounded) until QEMU has ended it. Before the
    /// switchover completes the destination cannot run the guest, so cancelling is always safe
    /// here: resuming is what the machine decided.
    static func endStuckTransfer(_ qmp: QMPClient, logger: Logger) async {
        let underWay: Set<String> = ["setup", "active", "pre-switchover", "device", "cancelling", "wait-unplug"]
        do {
            guard let status = try await qmp.queryMigrate().status, underWay.contains(status) else { return }
            logger.warning("QEMU's outgoing migration is still under way; cancelling it before the guest resumes here", metadata: ["qemu.migration": "\(status)"])
            if status != "cancelling" { try await qmp.migrateCancel() }
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                guard let now = try await qmp.queryMigrate().status, underWay.contains(now) else { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            logger.error("QEMU's outgoing migration did not end within 10 s of its cancel")
        } catch {
            // The resume that follows reports its own failure; this only logs why the cancel did not happen.
            logger.error("cannot check or cancel QEMU's outgoing migration before resuming", metadata: ["error": "\(error)"])
        }
    }

    func keepPaused() async {
        // The in-memory mark (the caller keeps the VM in doubt while the machine says so) is
        // what stops start and migrate; the hold makes it survive a restart.
        do {
            try await context.journal.hold(vm: vmID, reason: "handover of migration \(id) to \(peer) is in doubt: `hostmesh vm resolve \(vmName)` shows the choices")
        } catch {
            writeFailed = true
            note("the in-doubt hold could not be written (\(error)); the VM stays held in memory")
            logger.error("cannot journal the in-doubt hold; the VM stays held in memory", metadata: ["error": "\(error)"])
        }
    }

    func releaseLocal() async throws {
        do { try await context.journal.release(migration: id, vm: vmID, to: peer, epoch: epoch + 1) } catch {
            writeFailed = true
            logger.error("cannot journal releasing the VM; its copy stays paused here", metadata: ["error": "\(error)"])
            throw error
        }
        released = true
        if let spec {
            if portsStayBehind { await context.ports?.detach(spec) } else { await context.ports?.forwardStragglers(spec, to: peer) }
            SwitchoverTrace.mark(logger, "source-commit-confirmed", vm: vmID)
        }
        await context.observer.reached(.sourceReleased, migration: id, vm: vmID, name: vmName, peer: peer)
        // Teardown last: the point above sees the released copy as the journal left it.
        await context.vms.endOutgoing(vmID, released: true, inDoubt: false)
        logger.info("released: the guest runs on the destination", metadata: ["mesh.peer": "\(peer)"])
    }

    func succeeded() async {
        let report = await makeReport()
        self.report = report
        do {
            let json = try JSONEncoder().encode(report)
            try await context.journal.setSourcePhase(id, .done, peer: peer, error: nil, result: String(decoding: json, as: UTF8.self))
        } catch {
            // The migration itself is done and journaled (release); only the figures are lost.
            logger.warning("cannot journal the migration's figures", metadata: ["error": "\(error)"])
        }
    }

    func failed(_ failure: SourceMigration.Failure) async {
        outcome = failure
    }

    private func makeReport() async -> MigrationReport {
        let qemuDowntime = result?.downtimeMs ?? 0
        let handover = phases["handover"] ?? 0
        // The measured pause when both clocks are this host's (or synchronised); otherwise
        // QEMU's figure plus the handover, which bounds it from above.
        var downtime = qemuDowntime + handover
        if let stoppedAt = await stopped?.value, let resumed = commitAnswer?.resumedAt, resumed > stoppedAt,
           resumed - stoppedAt < Double(downtime) / 1000 + 1 {
            downtime = Int64(((resumed - stoppedAt) * 1000).rounded())
        }
        return MigrationReport(totalMs: since(started), qemuDowntimeMs: qemuDowntime, switchoverMs: handover, downtimeMs: downtime,
                               transferredBytes: result?.transferredBytes ?? 0, mbPerSecond: result?.mbPerSecond ?? 0,
                               iterations: result?.iterations ?? 0, ladder: result?.ladder.map { "\($0)" } ?? [],
                               streams: (tunnel?.streamsOpened ?? 0) * (tunnel?.stripes ?? 1), phasesMs: phases, postcopy: postcopyUsed,
                               disks: localDisks.isEmpty ? nil : localDisks.compactMap(\.report))
    }
}

