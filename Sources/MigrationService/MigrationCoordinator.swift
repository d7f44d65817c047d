public import ControlAPI
import Foundation
public import Hypervisor
public import Logging
public import MeshWire
public import Migration
public import NIOConcurrencyHelpers
public import SecureChannel

/// Live migration between agents (Protocol.md §6). The protocol decisions live in the pure
/// state machines `SourceMigration` and `DestinationMigration`, carried out by their one
/// executor each; this actor is the shell around them: it admits, serialises the messages of
/// one migration, and recovers after a restart.
///
/// The guarantee: a VM runs on at most one host, and a handover never loses it. The destination
/// runs the guest only after journaling the source's commit with the VM's next ownership epoch;
/// the source never resumes after it may have committed unless the destination says it
/// discarded its copy; when neither is known, the guest stays paused (in doubt). A safety check
/// that cannot be made (the journal or the ownership records cannot be read) refuses.
public actor MigrationCoordinator {
    /// What the coordinator works with.
    public struct Configuration: Sendable {
        /// Per-host limits.
        public var limits = MigrationLimits()
        /// How long the source waits for the destination's answer to a commit (then: in doubt).
        public var commitAnswerTimeout: Duration = .seconds(30)
        /// How often in-doubt handovers are asked about again.
        public var inDoubtRetryInterval: Duration = .seconds(5)
        /// The congestion control of the stream's sending sockets at distance (Protocol.md §6.11):
        /// the agent's `stream_congestion_control`.
        public var streamCongestionControl = StreamCongestionControl.Choice.default
        /// The QEMU binary the pre-flight checklist asks what this host runs (Protocol.md §6.9).
        public var qemuBinary = "qemu-system-x86_64"
        /// Sees the migration points (fault injection in tests); sees nothing by default.
        public var observer: any MigrationObserver = NoMigrationObserver()
        /// Signs the source's handover statement at commit (Protocol.md §6.12); none by default.
        public var evidence: any MigrationHandoverEvidence = NoMigrationHandoverEvidence()
        /// Defaults.
        public init() {}
    }

    let context: MigrationContext
    let configuration: Configuration
    var logger: Logger { context.logger }
    var journal: any MigrationJournaling { context.journal }
    var vms: any MigrationVMRegistry { context.vms }
    /// Where other agents are now (host id → channel address), from hellos and membership.
    public nonisolated var peerAddresses: NIOLockedValueBox<[String: HostPort]> { context.peerAddresses }

    /// Incoming migrations admitted or committed here, by id.
    var incoming: [String: DestinationExecutor<IncomingRun>] = [:]
    /// Migrations with a message being handled, and the messages waiting for them. The actor is
    /// reentrant at every `await`: without this, a query or an abort on one channel could act on
    /// a state a commit on another channel is halfway through changing.
    private var busy: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Admissions granted whose migration is not in `incoming` yet: id → what they reserve.
    /// Counted with `incoming` so that prepares arriving meanwhile cannot all take the last slot.
    var admitting: [String: Reservation] = [:]

    /// What an admitted incoming migration holds on this host until it ends.
    struct Reservation: Sendable {
        /// Memory, MiB.
        var memoryMiB: Int
        /// Room for its disk images in the storage directory, bytes.
        var diskBytes: UInt64
    }
    /// Migrations whose journal row recovery, the in-doubt retry loop or `vm resolve` is acting
    /// on: one at a time per migration, so that none acts on a row another has just changed.
    private var settling: Set<String> = []
    var outgoingCount = 0
    /// Migrations begun on this host since it started, both directions (a slot taken, an
    /// incoming one admitted): a reader that samples `inFlight` now and then sees by this count
    /// that one came and went between two samples (DRS's demand, §10.2).
    public internal(set) var begun = 0
    /// Of `outgoingCount`, migrations with local disks (`MigrationLimits.outgoingWithDisks`).
    var outgoingWithDisksCount = 0
    /// Migrations waiting for an outgoing slot, in order.
    var queue = OutgoingQueue()
    /// Queue tickets granted a slot whose waiter has not picked it up yet.
    var grantedTickets: Set<UInt64> = []
    /// The probe of this host's QEMU capabilities for checklists: running, or done and kept.
    var capabilityProbe: Task<QEMUCapabilities, any Error>?
    /// What running VMs' QEMUs said they can run, by binary, version and accelerator (a few entries).
    var runningQEMUCapabilities: [String: QEMUCapabilities] = [:]
    /// Destinations a checklist reached, by address: the host that answered and the channel's
    /// round trip, so the next migration there opens its stream's channels at once (§6.3).
    var measuredDestinations: [HostPort: MeasuredDestination] = [:]
    /// Per-host limits in force (the configuration's, until `setLimits`).
    private(set) var limits: MigrationLimits

    /// A coordinator for this host's VMs.
    public init(journal: any MigrationJournaling, vms: any MigrationVMRegistry, ports: (any MigrationPortMover)?,
                credentials: ChannelCredentials, configuration: Configuration = Configuration(), logger: Logger) {
        context = MigrationContext(journal: journal, vms: vms, ports: ports, observer: configuration.observer, evidence: configuration.evidence,
                                   credentials: credentials,
                                   logger: logger, peerAddresses: NIOLockedValueBox([:]), streamAuthorizations: NIOLockedValueBox([:]),
                                   commitAnswerTimeout: configuration.commitAnswerTimeout,
                                   streamCongestionSetting: NIOLockedValueBox(configuration.streamCongestionControl))
        self.configuration = configuration
        limits = configuration.limits
    }

    /// Changes the per-host limits (a configuration reload). Migrations under way go on; a
    /// higher outgoing limit starts queued ones at once, a lower one starts none until enough end.
    public func setLimits(_ new: MigrationLimits) {
        limits = new
        grantQueuedSlots()
    }

    /// Changes the congestion control of migration streams at distance (a configuration
    /// reload): streams dialled from now on use it, those open keep theirs.
    public nonisolated func setStreamCongestionControl(_ choice: StreamCongestionControl.Choice) {
        context.streamCongestionSetting.withLockedValue { $0 = choice }
    }

    var hostID: String { context.hostID }

    /// Migrations under way on this host, both directions.
    public var inFlight: Int { outgoingCount + incoming.values.filter { $0.machine.phase == .admitted }.count }

    /// Takes migration `id` for settling; false if someone else is settling it.
    func beginSettling(_ id: String) -> Bool { settling.insert(id).inserted }
    func endSettling(_ id: String) { settling.remove(id) }

    /// Waits until no other message about migration `id` is being handled, then holds it.
    func acquire(_ id: String) async {
        guard busy[id] != nil else {
            busy[id] = []
            return
        }
        await withCheckedContinuation { busy[id, default: []].append($0) }
    }

    /// Hands migration `id` to the next waiting message, or frees it.
    func relinquish(_ id: String) {
        guard var waiting = busy[id], !waiting.isEmpty else {
            busy[id] = nil
            return
        }
        let next = waiting.removeFirst()
        busy[id] = waiting
        next.resume()
    }

    // MARK: - Source

    /// Migrates a running VM to the agent at `address` and returns the figures.
    /// With local disks, the source's images are deleted once the handover commits unless
    /// `keepSourceDisks` (Protocol.md §6.7). Beyond this host's outgoing limit the migration waits
    /// in the queue, and a busy destination is asked again after the time it gives, unless
    /// `queue` is false: then both are refused at once (Protocol.md §6.4, busy and the queue).
    /// `crossDomain`: the destination is a host of another, federated domain that offered to take
    /// the VM (Protocol.md §6.10); the offer stood in for the pre-flight checklist.
    public func migrate(_ reference: String, to address: HostPort, settings: MigrationSettings, keepSourceDisks: Bool = false, queue: Bool = true,
                        crossDomain: CrossDomainTarget? = nil,
                        progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) async throws -> MigrationReport {
        // Whether it mirrors local disks decides which slots it needs. A VM that cannot be looked up
        // takes a plain slot: taking the VM (`beginOutgoing`) refuses it with the reason, and a spec
        // that gains a local disk before then is refused in `attempt`, so losing the error is safe.
        let known = try? await vms.lookUp(reference)
        let withDisks = Self.hasLocalDisks(known?.spec)
        var waited = try await takeOutgoingSlot(for: reference, to: "\(address)", withDisks: withDisks, queue: queue, progress: progress)
        defer { releaseOutgoingSlot(withDisks: withDisks) }
        MigrationMetrics.waited(waited)
        // The pre-flight checklist first (Protocol.md §6.9): refused before the VM is taken. Its
        // questions go on a control channel, which never crosses a domain boundary: a host of
        // another domain answered the same questions (room, networks) in its offer.
        // The channel it asked on stays open for the prepare (§6.9): a new one would cost its handshakes again.
        let (checklist, checkedChannel) = crossDomain == nil ? await preflight(reference, to: address, forMigration: settings)
            : (PreflightReport(vm: reference, destination: "\(address)", items: [PreflightReport.Item(name: "vm", ok: true, detail: "checked when the VM is taken")]), nil)
        // A VM not movable here (stopped, held, unknown) is refused by taking it, with that reason;
        // its other items could not be checked.
        let movable = checklist.items.first { $0.name == "vm" }?.ok == true
        let failed = movable ? checklist.items.filter(Self.refuses) : []
        guard failed.isEmpty else {
            await checkedChannel?.close()
            MigrationMetrics.ended(.refused, role: "source")
            // A VM stopped (or taken by another command) while the checklist asked its QEMU is
            // refused for that reason, as taking it would say, not for the question its going
            // away made fail ("QMP connection closed"). Taken and given back at once otherwise.
            let vm = try await vms.beginOutgoing(reference)
            await vms.endOutgoing(vm.id, released: false, inDoubt: false)
            let lines = PreflightReport(vm: reference, destination: "\(address)", items: failed).lines
            logger.warning("pre-flight checklist refuses the migration", metadata: ["vm.ref": "\(reference)", "error": "\(lines.joined(separator: "; "))"])
            throw ControlError.conflict("the pre-flight checklist refuses this migration (the guest was not touched):\n" + lines.joined(separator: "\n"))
        }
        var answeredBusy = false
        while true {
            do {
                // The first attempt's prepare takes the checked channel; one not taken is closed here.
                defer { if let checkedChannel { Task { await checkedChannel.close() } } }
                // After a busy answer the stream's channels wait for admission: opened early on
                // every retry they would spend the destination's handshakes each second for nothing.
                return try await attempt(reference, to: address, settings: settings, keepSourceDisks: keepSourceDisks, queue: queue,
                                         waited: waited > .zero, diskSlot: withDisks, crossDomain: crossDomain, checkedChannel: checkedChannel,
                                         openStreamsEarly: !answeredBusy, progress: progress)
            } catch let busy as DestinationBusy {
                answeredBusy = true
                MigrationMetrics.busyAnswered()
                logger.info("destination busy; asking again", metadata: ["vm.ref": "\(reference)", "migration.retry_after_ms": "\(busy.retryAfterMs)",
                                                                         "error": "\(busy.reason)"])
                await progress(MigrationProgressUpdate(phase: "busy", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal"))
                // Bounded: a destination cannot make the source wait forever per answer, nor spin it.
                let pause = Duration.milliseconds(min(max(busy.retryAfterMs, 100), 30_000))
                try await Task.sleep(for: pause)
                waited += pause
            }
        }
    }

    /// True when `spec` has a disk that is not shared: its migration mirrors it (needs a disk slot).
    static func hasLocalDisks(_ spec: VMSpec?) -> Bool {
        spec?.disks.contains { !$0.shared } ?? false
    }

    /// A destination at its incoming limit answered busy (`retry_after_ms`): ask it again later.
    struct DestinationBusy: Error {
        let reason: String
        let retryAfterMs: Int64
    }

    /// One attempt of a migration whose outgoing slot is taken. `waited`: it waited in the queue
    /// or for a busy destination, so a VM no longer movable was dropped from the queue. `diskSlot`:
    /// its slot counts against the limit of outgoing migrations with local disks.
    private func attempt(_ reference: String, to address: HostPort, settings: MigrationSettings, keepSourceDisks: Bool, queue: Bool,
                         waited: Bool, diskSlot: Bool, crossDomain: CrossDomainTarget?, checkedChannel: CheckedControlChannel? = nil,
                         openStreamsEarly: Bool = true,
                         progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) async throws -> MigrationReport {
        let vm: OutgoingVM
        do { vm = try await vms.beginOutgoing(reference) } catch let error as ControlError where waited {
            // Stopped, moved, deleted or held while it waited.
            MigrationMetrics.ended(.dropped, role: "source")
            logger.warning("queued migration dropped", metadata: ["vm.ref": "\(reference)", "error": "\(error.message)"])
            throw ControlError(code: error.code, message: "dropped from the queue: \(error.message)")
        }
        if Self.hasLocalDisks(vm.spec) && !diskSlot {
            // Its spec gained a local disk after the slot was taken: fail closed rather than mirror
            // beyond max_outgoing_disk_migrations.
            await vms.endOutgoing(vm.id, released: false, inDoubt: false)
            MigrationMetrics.ended(.refused, role: "source")
            throw ControlError.conflict("\(vm.name)'s disks changed while its migration waited for a slot (it now has local disks); the guest was not touched: retry")
        }
        let id = UUID().uuidString.lowercased()
        // The caller sees its progress; the observer sees every migration's (events, dashboard).
        let observer = context.observer, name = vm.name, vmID = vm.id, peer = "\(address)"
        let reported: @Sendable (MigrationProgressUpdate) async -> Void = { update in
            await progress(update)
            await observer.progressed(update, migration: id, vm: vmID, name: name, peer: peer)
        }
        let run = SourceRun(context: context, id: id, vm: vm, address: address, settings: settings, crossDomain: crossDomain,
                            checkedChannel: checkedChannel, openStreamsEarly: openStreamsEarly, progress: reported)
        var executor = SourceExecutor(machine: SourceMigration(id: id, disks: SourceRun.diskPolicy(vm.spec, keepSource: keepSourceDisks)),
                                      environment: run)
        await executor.handle(.start)
        await run.close()
        let phase = executor.machine.phase
        let released = await run.released
        // Anything short of settled keeps the VM marked: in doubt, committed but not released,
        // or a journal that may not say what was done.
        let writeFailed = await run.writeFailed
        let unsettled = phase == .inDoubt || phase == .committed || (writeFailed && !released)
        if !released { await vms.endOutgoing(vm.id, released: false, inDoubt: unsettled) }
        var log = logger
        log[metadataKey: "migration.id"] = "\(id)"
        log[metadataKey: "vm.id"] = "\(vm.id)"
        if let report = await run.report {
            log.info("migration completed", metadata: ["migration.downtime_ms": "\(report.downtimeMs)", "migration.total_ms": "\(report.totalMs)"])
            MigrationMetrics.completed(report)
            return report
        }
        let outcome = await run.outcome
        let detail = await run.failure
        if queue, phase == .aborted, !unsettled, let busy = await run.destinationBusy {
            throw DestinationBusy(reason: busy.reason, retryAfterMs: busy.retryAfterMs)
        }
        let reason = [outcome?.reason, detail].compactMap { $0 }.joined(separator: ": ")
        let message = "\(reason.isEmpty ? "migration ended without a result" : reason); the guest is on: \(outcome?.guest.rawValue ?? phase.rawValue)"
        log.warning("migration failed", metadata: ["migration.phase": "\(phase)", "error": "\(message)"])
        MigrationMetrics.ended(unsettled ? .inDoubt : .failed, role: "source")
        throw ControlError.failed(message)
    }

    // MARK: - Destination

    /// The stream acceptor's question: where does this migration stream go?
    /// A stream is authorised only for an admitted migration, from the host it was admitted from,
    /// and (for "nbd-stream") only when that migration mirrors disks (Protocol.md §6.7).
    public nonisolated func authorizeStream(peer: PeerIdentity, hello: Hostmesh_V1_MigrationStreamHello) throws -> String {
        let admitted = context.streamAuthorizations.withLockedValue { $0[hello.migrationID] }
        // A host of another domain is `host@domain` here (`PeerName`): it never passes for a
        // member of this domain whose host id it shares.
        return try StreamAuthorization.socket(admitted, migration: hello.migrationID, purpose: peer.purpose,
                                              peer: PeerName.of(peer, localDomain: context.domain))
    }

    /// Handles a migration message on a control channel from host `peer`; returns the answer to
    /// send, or nil when none is owed (an abort), or none can be given safely (a query whose
    /// answer cannot be read from the journal: the source stays in doubt rather than guess).
    public func handle(_ body: Hostmesh_V1_AgentEnvelope.OneOf_Body, from peer: String) async -> Hostmesh_V1_AgentEnvelope? {
        let id: String
        switch body {
        case .migrationPrepare(let m): id = m.migrationID
        case .migrationCommit(let m): id = m.migrationID
        case .migrationAbort(let m): id = m.migrationID
        case .migrationQuery(let m): id = m.migrationID
        default: return nil
        }
        await acquire(id)
        defer { relinquish(id) }
        switch body {
        case .migrationPrepare(let prepare): return await prepareIncoming(prepare, from: peer)
        case .migrationCommit(let commit):
            return await commitIncoming(commit.migrationID, deltas: commit.portDeltas.map { [UInt8]($0) }, evidence: commit.evidence, from: peer)
        case .migrationAbort(let abort):
            await abortIncoming(abort.migrationID, reason: abort.reason.isEmpty ? "the source aborted" : abort.reason, from: peer)
            return nil
        case .migrationQuery(let query): return await verdict(query.migrationID)
        default: return nil
        }
    }

    /// A control channel from `peer` ended: the migrations prepared on it and not committed are discarded.
    public func channelEnded(migrations ids: Set<String>, from peer: String) async {
        for id in ids {
            await acquire(id)
            await abortIncoming(id, reason: "the control channel from the source ended before commit", from: peer)
            relinquish(id)
        }
    }
}
