public import ControlAPI
import Foundation
import GRDB
public import Hypervisor
public import Logging
import MeshWire
import Migration
import NIOConcurrencyHelpers
import NIOCore
public import SecureChannel

/// Live migration between agents (Protocol.md §6). The protocol decisions live in the pure
/// state machines `SourceMigration` and `DestinationMigration`; this actor is their shell: it
/// journals, talks to the peer, drives QEMU and the tunnel, and recovers after a restart.
///
/// The guarantee: a VM runs on at most one host, and a handover never loses it. The destination
/// runs the guest only after journaling the source's commit with the VM's next ownership epoch;
/// the source never resumes after it may have committed unless the destination says it
/// discarded its copy; when neither is known, the guest stays paused (in doubt).
public actor MigrationCoordinator {
    /// Progress of an outgoing migration, for the command line (moved to ControlAPI).
    public typealias Progress = MigrationProgressUpdate

    /// Per-host limits. Defaults as vMotion's: 4 concurrent migrations per host on a link below
    /// 10 Gbit/s (or of unknown speed), 8 on a faster one.
    public struct Limits: Sendable, Equatable {
        /// Concurrent outgoing migrations.
        public var outgoing = 4
        /// Concurrent incoming migrations.
        public var incoming = 4
        /// Memory kept free for the host itself, MiB.
        public var hostReserveMiB = 256
        /// Limits with defaults.
        public init() {}

        /// Defaults for a link of `megabits` per second (nil: unknown), overridden where given.
        public init(linkMegabits megabits: Int?, incoming: Int? = nil, outgoing: Int? = nil) {
            let byLink = (megabits ?? 0) >= 10_000 ? 8 : 4
            self.incoming = incoming ?? byLink
            self.outgoing = outgoing ?? byLink
        }
    }

    struct Incoming: Sendable {
        var machine: DestinationMigration
        var spec: VMSpec
        var source: String
        var epoch: Int64
        var process: VMProcess?
        var resumed: Task<Double?, Never>?
    }

    let vms: VMManager
    let store: AgentStore
    let journal: MigrationJournal
    let credentials: ChannelCredentials
    let logger: Logger
    let limits: Limits
    let hooks: TestHooks
    /// The virtual switch whose ports move with the VMs (nil: VMs have no network).
    let network: AgentNetwork?
    /// Where other agents are now (host id → channel address), from hellos and membership.
    nonisolated let peerAddresses = NIOLockedValueBox<[String: HostPort]>([:])
    var incoming: [String: Incoming] = [:]
    /// Incoming migrations with a message being handled, and the messages waiting for them. The
    /// actor is reentrant at every `await`: without this, a query or an abort on one channel could
    /// act on a state a commit on another channel is halfway through changing (answer `receiving`
    /// after the commit was journaled, or discard a guest that is being resumed).
    private var busy: [String: [CheckedContinuation<Void, Never>]] = [:]
    /// Admissions granted whose migration is not in `incoming` yet (journal, QEMU start): id →
    /// MiB reserved. Counted with `incoming` so that prepares arriving meanwhile (the actor is
    /// reentrant at every await) cannot all take the last slot or the same memory.
    private var admitting: [String: Int] = [:]
    /// Migrations whose journal row recovery, the in-doubt retry loop or `vm resolve` is acting
    /// on: one at a time per migration, so that none acts on a row another has just changed.
    private var settling: Set<String> = []

    /// Takes migration `id` for settling; false if someone else is settling it.
    func beginSettling(_ id: String) -> Bool { settling.insert(id).inserted }
    func endSettling(_ id: String) { settling.remove(id) }
    var outgoingCount = 0
    /// Migration id → (source host, QEMU incoming socket), read by stream acceptors on event loops.
    nonisolated let streamAuthorizations = NIOLockedValueBox<[String: (String, String)]>([:])

    /// A coordinator for this host's VMs.
    public init(vms: VMManager, store: AgentStore, credentials: ChannelCredentials, stateDirectory: String,
                network: AgentNetwork? = nil, limits: Limits = Limits(), logger: Logger) {
        self.network = network
        self.vms = vms
        self.store = store
        journal = MigrationJournal(store: store)
        self.credentials = credentials
        self.logger = logger
        self.limits = limits
        hooks = TestHooks(stateDirectory: stateDirectory)
    }

    var hostID: String { credentials.identity.hostID }
    /// The ownership records this host knows (§6.6), read from its store.
    var ownership: OwnershipLedger { OwnershipLedger(store: store, hostID: hostID, logger: logger) }

    /// Migrations under way on this host, both directions.
    var inFlight: Int { outgoingCount + incoming.values.filter { $0.machine.phase == .admitted }.count }

    // MARK: - Source

    /// Migrates a running VM to the agent at `address` and returns the figures.
    public func migrate(_ reference: String, to address: HostPort, settings: MigrationSettings,
                        progress: @escaping @Sendable (Progress) async -> Void) async throws -> MigrationReport {
        guard outgoingCount < limits.outgoing else {
            throw ControlError.conflict("this host already runs \(outgoingCount) outgoing migrations (limit \(limits.outgoing)); retry when one ends")
        }
        // Taken before the first suspension point: concurrent requests cannot all pass the check.
        outgoingCount += 1
        defer { outgoingCount -= 1 }
        let (vm, spec, process) = try await vms.beginOutgoing(reference)
        let id = UUID().uuidString.lowercased()
        var log = logger
        log[metadataKey: "migration.id"] = "\(id)"
        log[metadataKey: "vm.id"] = "\(spec.id)"
        var run = OutgoingRun(coordinator: self, id: id, vm: vm, spec: spec, process: process, address: address,
                              settings: settings, logger: log, progress: progress)
        let outcome = await run.execute()
        await vms.endOutgoing(spec.id, released: run.released, inDoubt: run.machine.phase == .inDoubt)
        switch outcome {
        case .success(let report):
            log.info("migration completed", metadata: ["migration.downtime_ms": "\(report.downtimeMs)", "migration.total_ms": "\(report.totalMs)"])
            return report
        case .failure(let error):
            log.warning("migration failed", metadata: ["migration.phase": "\(run.machine.phase)", "error": "\(error)"])
            throw error
        }
    }

    func reached(_ point: String) async { await hooks.reached(point) }

    // MARK: - Destination

    /// The stream acceptor's question: where does this migration stream go?
    nonisolated func authorizeStream(peer: PeerIdentity, hello: Hostmesh_V1_MigrationStreamHello) throws -> String {
        guard let (source, socket) = streamAuthorizations.withLockedValue({ $0[hello.migrationID] }) else {
            throw SecureChannelError(.protocolViolation, "no migration \(hello.migrationID) is being received here")
        }
        guard source == peer.hostID else {
            throw SecureChannelError(.unexpectedPeer, "migration \(hello.migrationID) was admitted from \(source), not \(peer.hostID)")
        }
        return socket
    }

    /// Handles a migration message on a control channel from `peer`; returns the answer to send.
    func handle(_ body: Hostmesh_V1_AgentEnvelope.OneOf_Body, from peer: PeerIdentity) async -> Hostmesh_V1_AgentEnvelope? {
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
        case .migrationCommit(let commit): return await commitIncoming(commit.migrationID, deltas: commit.portDeltas.map { [UInt8]($0) }, from: peer)
        case .migrationAbort(let abort):
            await discardIncoming(abort.migrationID, reason: abort.reason.isEmpty ? "the source aborted" : abort.reason)
            return nil
        case .migrationQuery(let query): return await verdict(query.migrationID, from: peer)
        default: return nil
        }
    }

    /// A control channel ended: the migrations prepared on it and not committed are discarded.
    func channelEnded(migrations ids: Set<String>) async {
        for id in ids {
            await acquire(id)
            await discardIncoming(id, reason: "the control channel from the source ended before commit")
            relinquish(id)
        }
    }

    /// Waits until no other message about migration `id` is being handled, then holds it.
    private func acquire(_ id: String) async {
        guard busy[id] != nil else {
            busy[id] = []
            return
        }
        await withCheckedContinuation { busy[id, default: []].append($0) }
    }

    /// Hands migration `id` to the next waiting message, or frees it.
    private func relinquish(_ id: String) {
        guard var waiting = busy[id], !waiting.isEmpty else {
            busy[id] = nil
            return
        }
        let next = waiting.removeFirst()
        busy[id] = waiting
        next.resume()
    }

    /// Why this host cannot take `spec` now, or nil. Synchronous on purpose: the caller reserves
    /// the slot before its next suspension point.
    private func admissionRefusal(_ spec: VMSpec) -> String? {
        let admitted = incoming.values.filter { $0.machine.phase == .admitted }
        let count = admitted.count + admitting.count
        if count >= limits.incoming {
            return "\(hostID) already receives \(count) migrations (limit \(limits.incoming))"
        }
        let reserved = admitted.reduce(0) { $0 + $1.spec.memoryMiB } + admitting.values.reduce(0, +)
        let available = HostMemory.availableMiB()
        let need = spec.memoryMiB + 64 // QEMU's own overhead, roughly
        if available - reserved - limits.hostReserveMiB < need {
            return "not enough memory on \(hostID): the VM needs \(need) MiB, \(available - reserved - limits.hostReserveMiB) MiB can be reserved"
        }
        return nil
    }

    private func prepareIncoming(_ prepare: Hostmesh_V1_MigrationPrepare, from peer: PeerIdentity) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.migrationPrepared.migrationID = prepare.migrationID
        let id = prepare.migrationID
        let spec: VMSpec, settings: MigrationSettings, choice: AcceleratorChoice
        do {
            spec = try JSONDecoder().decode(VMSpec.self, from: Data(prepare.vmSpecJson.utf8))
            settings = try JSONDecoder().decode(MigrationSettings.self, from: Data(prepare.settingsJson.utf8))
            guard let c = AcceleratorChoice(rawValue: prepare.accelerator) else { throw ControlError.badRequest("unknown accelerator \(prepare.accelerator)") }
            choice = c
        } catch {
            reply.migrationPrepared.error = "malformed request: \(error)"
            return reply
        }
        guard incoming[id] == nil else {
            reply.migrationPrepared.error = "migration \(id) is already known here"
            return reply
        }
        var machine = DestinationMigration(id: id)
        var refusal = admissionRefusal(spec)
        if refusal == nil { admitting[id] = spec.memoryMiB }
        defer { admitting[id] = nil } // from here on `incoming` holds it, or it failed
        if refusal == nil, let newer = try? await ownership.newerOwner(of: spec.id, above: Int64(prepare.epoch)), newer.owner != peer.hostID {
            // The source's copy is stale (it has not heard yet): taking it would make a second owner.
            refusal = "\(newer.owner) owns \(spec.name) at epoch \(newer.epoch), above the source's \(prepare.epoch): its copy is stale and must not move"
        }
        if refusal == nil {
            // The VM's id is this migration's from here on; nothing under it is touched otherwise.
            do { try await vms.reserveIncoming(spec) } catch let error as ControlError { refusal = error.message } catch { refusal = "\(error)" }
        }
        var state = Incoming(machine: machine, spec: spec, source: peer.hostID, epoch: Int64(prepare.epoch) + 1)
        for directive in machine.handle(.prepare(refusal: refusal)) {
            switch directive {
            case .replyPrepared(let refusal?):
                reply.migrationPrepared.error = refusal
                return reply
            case .journal:
                do { try await journal.beginDestination(id: id, spec: spec, source: peer.hostID, epoch: state.epoch) } catch {
                    await vms.cancelReservation(spec.id) // nothing was created under it
                    reply.migrationPrepared.error = "cannot journal the admission: \(error)"
                    return reply
                }
                await hooks.reached("destination:admitted")
            case .launchIncoming:
                do {
                    // This host's own socket paths for the NICs, and their ports, blocked until
                    // the guest announces itself here.
                    state.spec = AgentNetwork.localize(spec, directory: vms.directory(for: spec.id))
                    try await network?.importPorts(state.spec, records: prepare.portStates.map { [UInt8]($0) })
                    let process = try await vms.beginIncoming(state.spec, accelerator: AcceleratorVerdict(choice: choice, reason: "same as the migration source"))
                    state.process = process
                    let events = process.qmp.events()
                    state.resumed = Task { for await e in events where e.name == "RESUME" { return e.timestamp }; return nil }
                    let socket = vms.directory(for: spec.id).incomingSocket
                    try await IncomingMigration(qmp: process.qmp, settings: settings).listen(on: "unix:" + socket)
                    streamAuthorizations.withLockedValue { $0[id] = (peer.hostID, socket) }
                } catch {
                    state.machine = machine
                    incoming[id] = state
                    await discardIncoming(id, reason: "cannot start the destination QEMU: \(error)")
                    reply.migrationPrepared.error = "cannot start the destination QEMU: \(error)"
                    return reply
                }
                _ = machine.handle(.ready) // replies "prepared" below
            default:
                break
            }
        }
        state.machine = machine
        incoming[id] = state
        logger.info("admitted incoming migration", metadata: ["migration.id": "\(id)", "migration.source": "\(peer.hostID)", "vm.id": "\(spec.id)"])
        return reply
    }

    private func commitIncoming(_ id: String, deltas: [[UInt8]], from peer: PeerIdentity) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.migrationCommitted.migrationID = id
        guard var state = incoming[id], state.source == peer.hostID, let process = state.process else {
            // Unknown or discarded here: the machine refuses a late commit.
            var machine = (try? await journaledDestination(id)) ?? DestinationMigration(id: id)
            for case .replyCommitted(let error) in machine.handle(.commit(loaded: false)) { reply.migrationCommitted.error = error ?? "" }
            return reply
        }
        // Has QEMU here loaded the whole guest (or entered post-copy)?
        var loaded = false
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline, let info = try? await process.qmp.queryMigrate() {
            if info.status == "completed" || info.status == "postcopy-active" { loaded = true; break }
            if info.status == "failed" { break }
            try? await Task.sleep(for: .milliseconds(2))
        }
        var queue = state.machine.handle(.commit(loaded: loaded))
        while !queue.isEmpty {
            switch queue.removeFirst() {
            case .journal(.committed):
                do { try await journal.commitDestination(id: id, spec: state.spec, epoch: state.epoch) } catch {
                    queue = state.machine.handle(.resumeFailed("cannot journal the commit: \(error)"))
                    continue
                }
                streamAuthorizations.withLockedValue { $0[id] = nil }
                await hooks.reached("destination:committed")
            case .journal(.discarded):
                // After a commit, the VM row it wrote goes with the phase.
                guard case .discarded(let reason) = state.machine.verdict else { break }
                try? await journal.discardDestination(id: id, vm: state.spec.id, epoch: state.epoch, reason: reason)
            case .journal(let phase):
                try? await journal.setPhase(id, phase.rawValue, ended: phase == .running)
            case .resume:
                do {
                    // The ports' final counters and connection tracking, before the guest speaks.
                    try? await network?.apply(deltas: deltas)
                    try await process.qmp.cont()
                    await network?.resumed(state.spec)
                    // Only now is it an ordinary VM here that stop or migrate may touch.
                    await vms.adoptIncoming(state.spec.id)
                    queue += state.machine.handle(.resumed)
                } catch {
                    // Nothing ran here (QEMU died or refused): discard, and the source takes it back.
                    queue += state.machine.handle(.resumeFailed("\(error)"))
                }
            case .replyCommitted(let error):
                reply.migrationCommitted.error = error ?? ""
            case .discard:
                state.resumed?.cancel()
                await vms.abortIncoming(state.spec)
                streamAuthorizations.withLockedValue { $0[id] = nil }
                logger.warning("incoming migration discarded", metadata: ["migration.id": "\(id)", "vm.id": "\(state.spec.id)"])
            default:
                break
            }
        }
        if reply.migrationCommitted.error.isEmpty, let watcher = state.resumed {
            let timeout = Task { try? await Task.sleep(for: .seconds(1)); watcher.cancel() }
            reply.migrationCommitted.resumedAt = await watcher.value ?? 0
            timeout.cancel()
            logger.info("incoming migration committed; the guest runs here", metadata: ["migration.id": "\(id)", "vm.id": "\(state.spec.id)", "vm.epoch": "\(state.epoch)"])
        }
        state.resumed?.cancel()
        incoming[id] = state.machine.phase == .admitted ? state : nil
        return reply
    }

    func discardIncoming(_ id: String, reason: String) async {
        guard var state = incoming[id] else { return }
        for directive in state.machine.handle(.abort(reason)) {
            switch directive {
            case .journal(let phase): try? await journal.setPhase(id, phase.rawValue, error: reason, ended: true)
            case .discard:
                state.resumed?.cancel()
                await vms.abortIncoming(state.spec)
                streamAuthorizations.withLockedValue { $0[id] = nil }
                logger.info("incoming migration discarded", metadata: ["migration.id": "\(id)", "reason": "\(reason)"])
            default: break
            }
        }
        incoming[id] = state.machine.phase == .admitted || state.machine.phase == .committed ? state : nil
    }

    private func journaledDestination(_ id: String) async throws -> DestinationMigration? {
        guard let row = try await journal.migration(id), row.role == "destination",
              let phase = DestinationMigration.Phase(rawValue: row.phase) else { return nil }
        return DestinationMigration(id: id, journaled: phase, reason: row.error ?? "")
    }

    private func verdict(_ id: String, from peer: PeerIdentity) async -> Hostmesh_V1_AgentEnvelope {
        var machine = incoming[id]?.machine
        if machine == nil { machine = try? await journaledDestination(id) }
        let verdict = machine?.verdict ?? .unknown
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.migrationVerdict.migrationID = id
        switch verdict {
        case .unknown: reply.migrationVerdict.verdict = .unknown
        case .receiving: reply.migrationVerdict.verdict = .receiving
        case .committed: reply.migrationVerdict.verdict = .committed
        case .discarded(let why):
            reply.migrationVerdict.verdict = .discarded
            reply.migrationVerdict.reason = why
        }
        return reply
    }
}

/// Free memory the kernel could hand out now (MemAvailable), MiB.
enum HostMemory {
    static func availableMiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kib = Int(line.split(separator: " ").dropFirst().first ?? "") else { return Int.max / 2 }
        return kib / 1024
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
