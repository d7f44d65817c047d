import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshTime
import MeshWire
import Migration
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
    }

    let context: MigrationContext
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

    /// A live migration of `vm` to the agent at `address`.
    init(context: MigrationContext, id: String, vm: OutgoingVM, address: HostPort, settings: MigrationSettings,
         progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) {
        self.context = context
        self.id = id
        vmID = vm.id
        vmName = vm.name
        epoch = vm.epoch
        spec = vm.spec
        live = Live(address: address, settings: settings, process: vm.process, progress: progress)
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
        id = row.id
        vmID = row.vmID
        vmName = row.vmName
        epoch = row.epoch ?? 1
        self.spec = spec
        live = nil
        peer = row.peer
        peerAddress = row.peerAddress
        var log = context.logger
        log[metadataKey: "migration.id"] = "\(row.id)"
        log[metadataKey: "vm.id"] = "\(row.vmID)"
        logger = log
    }

    private var row: JournaledMigration {
        JournaledMigration(id: id, vmID: vmID, vmName: vmName, role: .source, peer: peer, peerAddress: peerAddress,
                           phase: "", epoch: epoch, error: nil, ended: false)
    }

    private func since(_ t: ContinuousClock.Instant) -> Int64 { (ContinuousClock.now - t).wholeMilliseconds }

    private func note(_ text: String) {
        failure = failure.map { "\($0); \(text)" } ?? text
    }

    /// Ends the run's resources (tunnel, channel, watchers); the VM is left as the machine left it.
    func close() async {
        stopped?.cancel()
        transfer?.cancel() // finished already unless the run ended while QEMU was still sending
        await tunnel?.close()
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
        await context.observer.reached(.source(phase))
        if context.observer.cutsChannel(at: .source(phase)), let connection {
            // Fault injection: the channel drops here. Closing an open channel cannot fail in a way that matters.
            try? await connection.connection.channel.channel.close()
        }
    }

    func sendPrepare() async -> SourceMigration.Event? {
        guard let live, let spec else { return .peerLost("no channel to the destination in recovery") }
        await live.progress(.init(phase: "prepare", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal"))
        var control = SecureChannelConfiguration(credentials: context.credentials)
        control.policy.purpose = "control"
        do {
            let connection = try await HeldConnection.hold(
                SecureConnection.connect(host: live.address.host, port: live.address.port, configuration: control, logger: logger))
            self.connection = connection
            peer = connection.connection.peer.hostID
            logger[metadataKey: "mesh.peer"] = "\(peer)"
            phases["connect"] = since(started)
            var prepare = Hostmesh_V1_AgentEnvelope()
            prepare.migrationPrepare.migrationID = id
            prepare.migrationPrepare.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
            prepare.migrationPrepare.settingsJson = String(decoding: try JSONEncoder().encode(live.settings), as: UTF8.self)
            prepare.migrationPrepare.accelerator = live.process.record.accelerator.choice.rawValue
            prepare.migrationPrepare.epoch = UInt64(epoch)
            prepare.migrationPrepare.portStates = try await context.ports?.exportPorts(spec).map { Data($0) } ?? []
            try await connection.outbound.write(EnvelopeWriter.frame(prepare))
            var reader = connection.reader()
            let answer = try await reader.next()
            self.reader = reader
            guard case .migrationPrepared(let prepared)? = answer?.body, prepared.migrationID == id else {
                note("\(peer) did not answer the migration request")
                return .peerLost("no answer")
            }
            phases["prepare"] = since(started) - (phases["connect"] ?? 0)
            guard prepared.error.isEmpty else {
                note("\(peer) refused the migration: \(prepared.error)")
                return .refused(prepared.error)
            }
            return .admitted
        } catch {
            note("cannot reach the destination at \(live.address): \(error)")
            return .peerLost("\(error)")
        }
    }

    func openTransfer() async -> SourceMigration.Event? {
        guard let live else { return .transferFailed("no stream in recovery") }
        var streamConfiguration = SecureChannelConfiguration(credentials: context.credentials)
        streamConfiguration.policy.expectedPeer = peer
        do {
            tunnel = try await OutgoingStreamTunnel.start(
                socketPath: context.vms.directory(for: vmID).path + "/out-\(id.prefix(8)).sock", migrationID: id,
                host: live.address.host, port: live.address.port, configuration: streamConfiguration, logger: logger)
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

    func startTransfer() async -> SourceMigration.Event? {
        guard let live, let tunnel else { return .transferFailed("no stream in recovery") }
        let transferStart = ContinuousClock.now
        // QEMU timestamps its events: the guest's pause runs from STOP here to RESUME there.
        let events = live.process.qmp.events()
        // At STOP the switch starts holding the guest's frames (Protocol.md §8.6.1).
        let ports = context.ports, paused = spec, newHost = peer
        stopped = Task {
            for await e in events where e.name == "STOP" {
                if let ports, let paused { await ports.guestPaused(paused, movingTo: newHost) }
                return e.timestamp
            }
            return nil
        }
        var policy = ConvergenceLadder.Policy()
        policy.allowPostcopy = live.settings.postcopyAllowed
        policy.allowThrottle = live.settings.armAutoConverge
        let (outcomes, report) = AsyncStream.makeStream(of: TransferOutcome.self)
        let migration = OutgoingMigration(qmp: live.process.qmp, settings: live.settings, policy: policy, logger: logger)
        let progress = live.progress
        let destination = "unix:" + tunnel.socketPath
        // In post-copy the guest must run on the destination at once: the first post-copy sample
        // reports it, and QEMU goes on sending while the commit is on its way.
        transfer = Task {
            let outcome: Result<MigrationResult, any Error>
            do {
                outcome = .success(try await migration.run(to: destination) { sample, rung in
                    if sample.phase == .postcopy { report.yield(.postcopy) }
                    await progress(.init(phase: sample.phase == .postcopy ? "postcopy" : "transfer", percent: sample.percent,
                                         mbPerSecond: sample.throughputBytesPerSecond / 1e6, dirtyMBPerSecond: sample.dirtyBytesPerSecond / 1e6,
                                         iteration: sample.iteration, rung: "\(rung)"))
                })
            } catch {
                outcome = .failure(error)
            }
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
            let streams = tunnel.failures
            note("migration failed before switchover: \(why)" + (streams.isEmpty ? "" : " (streams: \(streams.joined(separator: "; ")))"))
            return .transferFailed(why)
        }
    }

    func sendCommit() async -> SourceMigration.Event? {
        guard let connection, let spec else { return .peerLost("no channel to the destination in recovery") }
        if switchoverStart == nil { switchoverStart = ContinuousClock.now }
        do {
            var commit = Hostmesh_V1_AgentEnvelope()
            commit.migrationCommit.migrationID = id
            // The ports stop here; their final state travels with the commit.
            commit.migrationCommit.portDeltas = try await context.ports?.freeze(spec).map { Data($0) } ?? []
            try await connection.outbound.write(EnvelopeWriter.frame(commit))
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
            if try await !process.qmp.queryStatus().running { try await process.qmp.cont() }
            logger.info("the guest runs here")
        } catch {
            note("the guest could not be resumed here (\(error)); `hostmesh vm show \(vmName)` shows its state")
            logger.error("cannot resume the guest", metadata: ["error": "\(error)"])
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
        if let spec { await context.ports?.forwardStragglers(spec, to: peer) }
        await context.observer.reached(.sourceReleased)
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
                               streams: tunnel?.streamsOpened ?? 0, phasesMs: phases, postcopy: postcopyUsed)
    }
}
