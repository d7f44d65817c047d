import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshWire
import Migration
import NIOConcurrencyHelpers
import NIOCore
import SecureChannel

/// One outgoing migration: executes the `SourceMigration` machine's directives in order.
struct OutgoingRun {
    let coordinator: MigrationCoordinator
    let id: String
    let vm: StoredVM
    let spec: VMSpec
    let process: VMProcess
    let address: HostPort
    let settings: MigrationSettings
    let logger: Logger
    let progress: @Sendable (MigrationCoordinator.Progress) async -> Void
    var machine: SourceMigration
    /// True once the local copy has been released (the VM lives elsewhere).
    var released = false

    private var connection: SecureConnection?
    private var reader: EnvelopeReader?
    private var peer = "?"
    private var tunnel: OutgoingStreamTunnel?
    private var result: MigrationResult?
    private var report: MigrationReport?
    private var failure: (any Error)?
    private let started = ContinuousClock.now
    private var phases: [String: Int64] = [:]
    private var switchoverStart: ContinuousClock.Instant?
    private var commitAnswer: Hostmesh_V1_MigrationCommitted?
    private var stopped: Task<Double?, Never>?
    private let commitSent = NIOLockedValueBox(false)
    private var postcopyUsed = false
    /// Set when a durable write that the next directives depend on failed: they are dropped.
    private var halted = false
    /// Set when a journal write failed: the directives queued after it must not be carried out.
    private var journalFailed = false

    init(coordinator: MigrationCoordinator, id: String, vm: StoredVM, spec: VMSpec, process: VMProcess, address: HostPort,
         settings: MigrationSettings, logger: Logger, progress: @escaping @Sendable (MigrationCoordinator.Progress) async -> Void) {
        self.coordinator = coordinator
        self.id = id
        self.vm = vm
        self.spec = spec
        self.process = process
        self.address = address
        self.settings = settings
        self.logger = logger
        self.progress = progress
        machine = SourceMigration(id: id)
    }

    private func since(_ t: ContinuousClock.Instant) -> Int64 { Int64((ContinuousClock.now - t).milliseconds) }

    mutating func execute() async -> Result<MigrationReport, any Error> {
        do { try await coordinator.journal.beginSource(id: id, vm: vm, peerAddress: "\(address)") } catch {
            return .failure(ControlError.failed("cannot journal the migration: \(error)"))
        }
        var queue = machine.handle(.start)
        while !queue.isEmpty && !halted {
            let directive = queue.removeFirst()
            let next = await carryOut(directive)
            if journalFailed {
                queue.removeAll()
                journalFailed = false
            }
            queue += next
        }
        stopped?.cancel()
        await tunnel?.close()
        if let connection { try? await connection.channel.channel.close() }
        if let report { return .success(report) }
        return .failure(failure ?? ControlError.failed("migration ended without a result"))
    }

    private mutating func carryOut(_ directive: SourceMigration.Directive) async -> [SourceMigration.Directive] {
        switch directive {
        case .journal(let phase):
            do {
                if coordinator.hooks.failsJournal("source:\(phase.rawValue)") {
                    throw ControlError.failed("test hook: the journal refused the write")
                }
                try await coordinator.journal.setPhase(id, phase.rawValue, peer: peer == "?" ? nil : peer,
                                                       error: failure.map { "\($0)" },
                                                       // In doubt is not an end: the retry loop and recovery pick it up.
                                                       ended: [.done, .aborted].contains(phase))
            } catch {
                logger.error("cannot journal the migration phase", metadata: ["migration.phase": "\(phase)", "error": "\(error)"])
                // Past `committing` (or ending) there is nothing left that a missing record could
                // make unsafe: go on. Up to it, what the phase leads to is not done.
                guard [.requested, .admitted, .transferring, .committing].contains(phase) else { return [] }
                journalFailed = true
                return machine.handle(.journalFailed("\(error)"))
            }
            await coordinator.reached("source:\(phase.rawValue)")
            if coordinator.hooks.cuts("source:\(phase.rawValue)"), let connection {
                try? await connection.channel.channel.close()
            }
            return []
        case .sendPrepare:
            return machine.handle(await prepare())
        case .startTransfer:
            var out: [SourceMigration.Directive] = []
            for d in machine.transferStarted() { out += await carryOut(d) }
            return out + machine.handle(await transfer())
        case .sendCommit:
            return machine.handle(await commit())
        case .sendAbort(let reason):
            var abort = Hostmesh_V1_AgentEnvelope()
            abort.migrationAbort.migrationID = id
            abort.migrationAbort.reason = reason
            try? await connection?.channel.outbound.write(EnvelopeWriter.frame(abort))
            return []
        case .queryPeer:
            return [] // only recovery asks; a live run learns from the channel
        case .reclaim:
            do { try await coordinator.journal.reclaim(vm: spec.id, epoch: vm.epoch + 2) } catch {
                // Not resumable without it: the guest stays paused, the journal still says
                // committing, and recovery will ask the destination again.
                failure = ControlError.failed("cannot journal taking \(spec.name) back (\(error)); the guest stays paused here")
                halted = true
            }
            return []
        case .resumeLocal:
            await coordinator.network?.unfreeze(spec)
            if let status = try? await process.qmp.queryStatus(), !status.running { try? await process.qmp.cont() }
            return []
        case .keepPaused:
            try? await coordinator.journal.hold(vm: spec.id, reason: "handover of migration \(id) to \(peer) is in doubt")
            return []
        case .releaseLocal:
            do { try await coordinator.journal.release(migration: id, vm: spec.id, to: peer, epoch: vm.epoch + 1) } catch {
                failure = ControlError.failed("the guest runs on \(peer), but releasing it here failed: \(error)")
                return []
            }
            released = true
            await coordinator.network?.forwardStragglers(spec, to: peer)
            await coordinator.reached("source:released")
            return machine.handle(.released)
        case .succeeded:
            report = await makeReport()
            if let report, let json = try? JSONEncoder().encode(report) {
                try? await coordinator.journal.setPhase(id, SourceMigration.Phase.done.rawValue, peer: peer,
                                                        result: String(decoding: json, as: UTF8.self), ended: true)
            }
            return []
        case .failed(let f):
            failure = failure.map { ControlError.failed("\(f.reason); the guest is on: \(f.guest) (\($0))") }
                ?? ControlError.failed("\(f.reason); the guest is on: \(f.guest)")
            return []
        }
    }

    private mutating func prepare() async -> SourceMigration.Event {
        await progress(.init(phase: "prepare", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal"))
        var control = SecureChannelConfiguration(credentials: coordinator.credentials)
        control.policy.purpose = "control"
        do {
            let connection = try await SecureConnection.connect(host: address.host, port: address.port, configuration: control, logger: logger)
            self.connection = connection
            peer = connection.peer.hostID
            phases["connect"] = since(started)
            var prepare = Hostmesh_V1_AgentEnvelope()
            prepare.migrationPrepare.migrationID = id
            prepare.migrationPrepare.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            prepare.migrationPrepare.settingsJson = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
            prepare.migrationPrepare.accelerator = process.record.accelerator.choice.rawValue
            prepare.migrationPrepare.epoch = UInt64(vm.epoch)
            prepare.migrationPrepare.portStates = try await coordinator.network?.exportPorts(spec).map { Data($0) } ?? []
            try await connection.channel.outbound.write(EnvelopeWriter.frame(prepare))
            reader = EnvelopeReader(connection.channel.inbound)
            guard case .migrationPrepared(let prepared)? = try await reader?.next()?.body, prepared.migrationID == id else {
                failure = ControlError.failed("\(peer) did not answer the migration request")
                return .peerLost("no answer")
            }
            phases["prepare"] = since(started) - (phases["connect"] ?? 0)
            guard prepared.error.isEmpty else {
                failure = ControlError.failed("\(peer) refused the migration: \(prepared.error)")
                return .refused(prepared.error)
            }
            return .admitted
        } catch {
            failure = ControlError.failed("cannot reach the destination at \(address): \(error)")
            return .peerLost("\(error)")
        }
    }

    private mutating func transfer() async -> SourceMigration.Event {
        let transferStart = ContinuousClock.now
        var streamConfiguration = SecureChannelConfiguration(credentials: coordinator.credentials)
        streamConfiguration.policy.expectedPeer = peer
        do {
            tunnel = try await OutgoingStreamTunnel.start(
                socketPath: coordinator.vms.directory(for: spec.id).path + "/out-\(id.prefix(8)).sock", migrationID: id,
                host: address.host, port: address.port, configuration: streamConfiguration, logger: logger)
        } catch {
            failure = ControlError.failed("cannot open the migration tunnel: \(error)")
            return .transferFailed("\(error)")
        }
        // QEMU timestamps its events: the guest's pause runs from STOP here to RESUME there.
        let events = process.qmp.events()
        stopped = Task { for await e in events where e.name == "STOP" { return e.timestamp }; return nil }
        var policy = ConvergenceLadder.Policy()
        policy.allowPostcopy = settings.postcopyAllowed
        policy.allowThrottle = settings.armAutoConverge
        // In post-copy the guest must run on the destination at once: the commit goes out from the
        // progress handler (after the journal says `committing`), not after the transfer.
        let postcopyCommit = makePostcopyCommit()
        let progress = self.progress
        do {
            result = try await OutgoingMigration(qmp: process.qmp, settings: settings, policy: policy, logger: logger)
                .run(to: "unix:" + tunnel!.socketPath) { sample, rung in
                    if sample.phase == .postcopy { await postcopyCommit() }
                    await progress(.init(phase: sample.phase == .postcopy ? "postcopy" : "transfer", percent: sample.percent,
                                         mbPerSecond: sample.throughputBytesPerSecond / 1e6, dirtyMBPerSecond: sample.dirtyBytesPerSecond / 1e6,
                                         iteration: sample.iteration, rung: "\(rung)"))
                }
        } catch {
            if commitSent.withLockedValue({ $0 }) {
                // Post-copy had started: the guest is the destination's now; a failure is the
                // destination's to report.
                phases["transfer"] = Int64((ContinuousClock.now - transferStart).milliseconds)
                postcopyUsed = true
                return .transferCompleted
            }
            let streams = tunnel?.failures ?? []
            failure = ControlError.failed("migration failed before switchover: \(error)" + (streams.isEmpty ? "" : " (streams: \(streams.joined(separator: "; ")))"))
            return .transferFailed("\(error)")
        }
        phases["transfer"] = Int64((ContinuousClock.now - transferStart).milliseconds)
        postcopyUsed = commitSent.withLockedValue { $0 }
        switchoverStart = ContinuousClock.now
        await progress(.init(phase: "switchover", percent: 100, mbPerSecond: result?.mbPerSecond ?? 0, dirtyMBPerSecond: 0,
                             iteration: result?.iterations ?? 0, rung: "normal"))
        return .transferCompleted
    }

    /// A one-shot sender of the commit for post-copy: journals `committing` first.
    private func makePostcopyCommit() -> @Sendable () async -> Void {
        let sent = commitSent
        let journal = coordinator.journal
        let id = self.id
        let outbound = connection?.channel.outbound
        let network = coordinator.network
        let spec = self.spec
        return {
            guard sent.withLockedValue({ s in defer { s = true }; return !s }) else { return }
            // Journal first; without the record no commit (the post-copy then fails and rolls back).
            guard (try? await journal.setPhase(id, SourceMigration.Phase.committing.rawValue)) != nil else { return }
            var commit = Hostmesh_V1_AgentEnvelope()
            commit.migrationCommit.migrationID = id
            commit.migrationCommit.portDeltas = (try? await network?.freeze(spec))?.map { Data($0) } ?? []
            try? await outbound?.write(EnvelopeWriter.frame(commit))
        }
    }

    /// How long the source waits for the destination's answer to the commit.
    static let commitAnswerTimeoutSeconds: Int64 = 30

    private mutating func commit() async -> SourceMigration.Event {
        if switchoverStart == nil { switchoverStart = ContinuousClock.now }
        do {
            if !commitSent.withLockedValue({ $0 }) {
                var commit = Hostmesh_V1_AgentEnvelope()
                commit.migrationCommit.migrationID = id
                // The ports stop here; their final state travels with the commit.
                commit.migrationCommit.portDeltas = try await coordinator.network?.freeze(spec).map { Data($0) } ?? []
                try await connection?.channel.outbound.write(EnvelopeWriter.frame(commit))
                commitSent.withLockedValue { $0 = true }
            }
            // A destination that neither answers nor drops the channel must not hold the guest
            // paused forever: after the timeout the channel is closed and the handover is in doubt.
            let channel = connection?.channel.channel
            let watchdog = Task {
                try await Task.sleep(for: .seconds(Self.commitAnswerTimeoutSeconds))
                try? await channel?.close()
            }
            defer { watchdog.cancel() }
            guard case .migrationCommitted(let committed)? = try await reader?.next()?.body, committed.migrationID == id else {
                failure = ControlError.failed("no commit confirmation from \(peer)")
                return .peerLost("no commit confirmation")
            }
            commitAnswer = committed
            phases["handover"] = since(switchoverStart!)
            if !committed.error.isEmpty {
                failure = ControlError.failed("\(peer) could not run \(spec.name): \(committed.error)")
                return .commitRefused(committed.error)
            }
            return .committed
        } catch {
            failure = ControlError.failed("handover of \(spec.name) to \(peer) is in doubt (\(error)); the guest stays paused here. `hostmesh vm resolve \(spec.name)` shows the choices")
            return .peerLost("\(error)")
        }
    }

    private func makeReport() async -> MigrationReport? {
        let result = self.result
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
                               streams: tunnel?.streamsOpened ?? 0, phasesMs: phases, postcopy: postcopyUsed)
    }
}
