import ControlAPI
import Foundation
import GRDB
public import Hypervisor
public import Logging
import MeshWire
import Migration
import NIOConcurrencyHelpers
import NIOCore
public import SecureChannel

/// Live migration between agents (Protocol.md §6): the source drives; the destination admits,
/// receives through the tunnel, and runs the guest only when the source commits.
///
/// The guarantee at this level: the destination never runs the guest before the source has
/// stopped its copy for good and said so (commit); the source never resumes its copy after
/// committing, unless the destination reports that it discarded its own.
public actor MigrationCoordinator {
    /// Progress of an outgoing migration, for the command line.
    public struct Progress: Codable, Sendable {
        /// Phase: prepare, transfer, switchover.
        public var phase: String
        /// Percent of RAM transferred.
        public var percent: Double
        /// MB/s.
        public var mbPerSecond: Double
        /// Dirty rate, MB/s.
        public var dirtyMBPerSecond: Double
        /// Pre-copy round.
        public var iteration: Int
        /// Convergence measure in force.
        public var rung: String
    }

    private struct Incoming: Sendable {
        var spec: VMSpec
        var source: String
        var process: VMProcess
        var settings: MigrationSettings
        /// Watches the destination QEMU for RESUME, to report when the guest ran again.
        var resumed: Task<Double?, Never>
    }

    private let vms: VMManager
    private let store: AgentStore
    nonisolated var storeForHistory: AgentStore { store }
    private let credentials: ChannelCredentials
    private let logger: Logger
    private var incoming: [String: Incoming] = [:]
    /// Migration id → (source host, QEMU incoming socket), read by stream acceptors on event loops.
    private nonisolated let streamAuthorizations = NIOLockedValueBox<[String: (String, String)]>([:])

    /// A coordinator for this host's VMs.
    public init(vms: VMManager, store: AgentStore, credentials: ChannelCredentials, logger: Logger) {
        self.vms = vms
        self.store = store
        self.credentials = credentials
        self.logger = logger
    }

    // MARK: - Source

    /// Migrates a running VM to the agent at `address` and returns the figures. On any failure
    /// before commit the VM keeps running here.
    public func migrate(_ reference: String, to address: HostPort, settings: MigrationSettings,
                        progress: @escaping @Sendable (Progress) async -> Void) async throws -> MigrationReport {
        let (spec, process) = try await vms.beginOutgoing(reference)
        let id = UUID().uuidString.lowercased()
        var log = logger
        log[metadataKey: "migration.id"] = "\(id)"
        log[metadataKey: "vm.id"] = "\(spec.id)"
        let started = Date()
        var record = StoredMigration(id: id, vmId: spec.id, vmName: spec.name, role: "source", peer: "\(address)", phase: "prepare",
                                     startedAt: started.timeIntervalSince1970)
        try await store.database.write { [record] db in try record.insert(db) }
        do {
            let report = try await runSource(id: id, spec: spec, process: process, address: address, settings: settings,
                                             record: &record, logger: log, progress: progress)
            // The VM lives on the destination now: forget it here before answering, so that a
            // migration straight back finds no stale copy.
            await vms.endOutgoing(spec.id, movedAway: true)
            record.phase = "done"
            record.endedAt = Date().timeIntervalSince1970
            record.result = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
            try await store.database.write { [record] db in try record.update(db) }
            log.info("migration completed", metadata: ["migration.downtime_ms": "\(report.downtimeMs)", "migration.total_ms": "\(report.totalMs)"])
            return report
        } catch {
            // In doubt the guest stays paused here but stays ours: still not "moved away".
            await vms.endOutgoing(spec.id, movedAway: false)
            record.endedAt = Date().timeIntervalSince1970
            record.error = "\(error)"
            try? await store.database.write { [record] db in try record.update(db) }
            log.warning("migration failed", metadata: ["migration.phase": "\(record.phase)", "error": "\(error)"])
            throw error
        }
    }

    private func runSource(id: String, spec: VMSpec, process: VMProcess, address: HostPort, settings: MigrationSettings,
                           record: inout StoredMigration, logger: Logger,
                           progress: @escaping @Sendable (Progress) async -> Void) async throws -> MigrationReport {
        let started = ContinuousClock.now
        func since(_ t: ContinuousClock.Instant) -> Int64 { Int64((ContinuousClock.now - t).milliseconds) }
        var control = SecureChannelConfiguration(credentials: credentials)
        control.policy.purpose = "control"
        let connection = try await SecureConnection.connect(host: address.host, port: address.port, configuration: control, logger: logger)
        record.peer = connection.peer.hostID
        let peer = connection.peer.hostID
        let connectMs = since(started)
        let report: MigrationReport = try await connection.channel.executeThenClose { inbound, outbound in
            var reader = EnvelopeReader(inbound)
            @Sendable func write(_ envelope: Hostmesh_V1_AgentEnvelope) async throws { try await outbound.write(EnvelopeWriter.frame(envelope)) }
            func send(_ build: (inout Hostmesh_V1_AgentEnvelope) throws -> Void) async throws {
                var envelope = Hostmesh_V1_AgentEnvelope()
                try build(&envelope)
                try await write(envelope)
            }
            // Prepare: the destination admits the VM and starts QEMU waiting for it.
            await progress(Progress(phase: "prepare", percent: 0, mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "normal"))
            try await send {
                $0.migrationPrepare.migrationID = id
                $0.migrationPrepare.vmSpecJson = String(decoding: try! JSONEncoder().encode(spec), as: UTF8.self)
                $0.migrationPrepare.settingsJson = String(decoding: try! JSONEncoder().encode(settings), as: UTF8.self)
                $0.migrationPrepare.accelerator = process.record.accelerator.choice.rawValue
            }
            guard case .migrationPrepared(let prepared)? = try await reader.next()?.body, prepared.migrationID == id else {
                throw ControlError.failed("\(peer) did not answer the migration request")
            }
            guard prepared.error.isEmpty else { throw ControlError.failed("\(peer) refused the migration: \(prepared.error)") }
            let preparedAt = ContinuousClock.now
            let prepareMs = since(started) - connectMs

            // Transfer: QEMU migrates to a local socket; the tunnel carries each stream encrypted.
            var streamConfiguration = SecureChannelConfiguration(credentials: credentials)
            streamConfiguration.policy.expectedPeer = peer
            let tunnel = try await OutgoingStreamTunnel.start(
                socketPath: vms.directory(for: spec.id).path + "/out-\(id.prefix(8)).sock", migrationID: id,
                host: address.host, port: address.port, configuration: streamConfiguration, logger: logger)
            // QEMU timestamps its events: the guest's pause runs from the source's STOP to the
            // destination's RESUME.
            let events = process.qmp.events()
            let stopped = Task { () -> Double? in
                for await event in events where event.name == "STOP" { return event.timestamp }
                return nil
            }
            defer { stopped.cancel() }
            // Commit: once QEMU has stopped the guest here for good. That is at completion, or
            // when post-copy starts: then the guest must run on the destination to fault in the
            // pages it still lacks, and the source can never take it back.
            var commitMessage = Hostmesh_V1_AgentEnvelope()
            commitMessage.migrationCommit.migrationID = id
            let sendCommit = commitMessage
            let postcopyHandover = NIOLockedValueBox<Task<Void, any Error>?>(nil)
            let result: MigrationResult
            do {
                var policy = ConvergenceLadder.Policy()
                policy.allowPostcopy = settings.postcopyAllowed
                policy.allowThrottle = settings.armAutoConverge
                result = try await OutgoingMigration(qmp: process.qmp, settings: settings, policy: policy, logger: logger)
                    .run(to: "unix:" + tunnel.socketPath) { sample, rung in
                        if sample.phase == .postcopy {
                            postcopyHandover.withLockedValue { task in
                                if task == nil { task = Task { try await write(sendCommit) } }
                            }
                        }
                        await progress(Progress(phase: sample.phase == .postcopy ? "postcopy" : "transfer", percent: sample.percent,
                                                mbPerSecond: sample.throughputBytesPerSecond / 1e6,
                                                dirtyMBPerSecond: sample.dirtyBytesPerSecond / 1e6, iteration: sample.iteration, rung: "\(rung)"))
                    }
            } catch where postcopyHandover.withLockedValue({ $0 }) == nil {
                await tunnel.close()
                try? await send {
                    $0.migrationAbort.migrationID = id
                    $0.migrationAbort.reason = "\(error)"
                }
                let streamFailures = tunnel.failures
                throw ControlError.failed("migration failed before switchover, \(spec.name) keeps running here: \(error)"
                                          + (streamFailures.isEmpty ? "" : " (streams: \(streamFailures.joined(separator: "; ")))"))
            }
            // Switchover: the source is stopped for good (postmigrate); hand over.
            let switchoverStart = ContinuousClock.now
            await progress(Progress(phase: "switchover", percent: 100, mbPerSecond: result.mbPerSecond, dirtyMBPerSecond: 0,
                                    iteration: result.iterations, rung: "normal"))
            let answer: Hostmesh_V1_MigrationCommitted
            do {
                if let handover = postcopyHandover.withLockedValue({ $0 }) {
                    try await handover.value // sent when post-copy started; the answer waits in the stream
                } else {
                    try await write(sendCommit)
                }
                guard case .migrationCommitted(let committed)? = try await reader.next()?.body, committed.migrationID == id else {
                    throw ControlError.failed("no commit confirmation")
                }
                answer = committed
            } catch {
                // In doubt: the destination may or may not run the guest. Never resume here.
                await tunnel.close()
                throw ControlError.failed("handover of \(spec.name) to \(peer) is in doubt (\(error)); the guest stays paused here and must not be resumed until \(peer) is checked")
            }
            await tunnel.close()
            guard answer.error.isEmpty else {
                // The destination discarded its copy: the guest continues here.
                try? await process.qmp.cont()
                throw ControlError.failed("\(peer) could not run \(spec.name) (\(answer.error)); it continues here")
            }
            let switchoverMs = Int64((ContinuousClock.now - switchoverStart).milliseconds)
            let qemuDowntime = result.downtimeMs
            // The measured pause when both clocks are this host's (or synchronised); otherwise
            // QEMU's figure plus the handover, which bounds it from above.
            let stoppedAt = await stopped.value
            var downtime = qemuDowntime + switchoverMs
            if let stoppedAt, answer.resumedAt > stoppedAt, answer.resumedAt - stoppedAt < Double(downtime) / 1000 + 1 {
                downtime = Int64(((answer.resumedAt - stoppedAt) * 1000).rounded())
            }
            return MigrationReport(totalMs: Int64((ContinuousClock.now - started).milliseconds), qemuDowntimeMs: qemuDowntime,
                                   switchoverMs: switchoverMs, downtimeMs: downtime,
                                   transferredBytes: result.transferredBytes, mbPerSecond: result.mbPerSecond,
                                   iterations: result.iterations, ladder: result.ladder.map { "\($0)" }, streams: tunnel.streamsOpened,
                                   phasesMs: ["connect": connectMs, "prepare": prepareMs,
                                              "transfer": Int64((switchoverStart - preparedAt).milliseconds), "handover": switchoverMs],
                                   postcopy: postcopyHandover.withLockedValue { $0 } != nil)
        }
        return report
    }

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
        var reply = Hostmesh_V1_AgentEnvelope()
        switch body {
        case .migrationPrepare(let prepare):
            reply.migrationPrepared.migrationID = prepare.migrationID
            do { try await prepareIncoming(prepare, from: peer) } catch {
                reply.migrationPrepared.error = "\(error)"
            }
        case .migrationCommit(let commit):
            reply.migrationCommitted.migrationID = commit.migrationID
            do { reply.migrationCommitted.resumedAt = try await commitIncoming(commit.migrationID, from: peer) } catch {
                reply.migrationCommitted.error = "\(error)"
            }
        case .migrationAbort(let abort):
            await abortIncoming(abort.migrationID, reason: abort.reason)
            return nil
        default:
            return nil
        }
        return reply
    }

    /// A control channel ended: the migrations prepared on it and not committed are discarded.
    func channelEnded(migrations ids: Set<String>) async {
        for id in ids where incoming[id] != nil {
            await abortIncoming(id, reason: "the control channel from the source ended before commit")
        }
    }

    private func prepareIncoming(_ prepare: Hostmesh_V1_MigrationPrepare, from peer: PeerIdentity) async throws {
        let spec = try JSONDecoder().decode(VMSpec.self, from: Data(prepare.vmSpecJson.utf8))
        let settings = try JSONDecoder().decode(MigrationSettings.self, from: Data(prepare.settingsJson.utf8))
        guard let choice = AcceleratorChoice(rawValue: prepare.accelerator) else {
            throw ControlError.badRequest("unknown accelerator \(prepare.accelerator)")
        }
        var log = logger
        log[metadataKey: "migration.id"] = "\(prepare.migrationID)"
        log[metadataKey: "vm.id"] = "\(spec.id)"
        let process = try await vms.beginIncoming(spec, accelerator: AcceleratorVerdict(choice: choice, reason: "same as the migration source"))
        do {
            let socket = vms.directory(for: spec.id).incomingSocket
            let events = process.qmp.events()
            let resumed = Task { () -> Double? in
                for await event in events where event.name == "RESUME" { return event.timestamp }
                return nil
            }
            try await IncomingMigration(qmp: process.qmp, settings: settings).listen(on: "unix:" + socket)
            incoming[prepare.migrationID] = Incoming(spec: spec, source: peer.hostID, process: process, settings: settings, resumed: resumed)
            streamAuthorizations.withLockedValue { $0[prepare.migrationID] = (peer.hostID, socket) }
            let record = StoredMigration(id: prepare.migrationID, vmId: spec.id, vmName: spec.name, role: "destination", peer: peer.hostID,
                                         phase: "receiving", startedAt: Date().timeIntervalSince1970)
            try await store.database.write { db in try record.insert(db) }
            log.info("admitted incoming migration", metadata: ["migration.source": "\(peer.hostID)"])
        } catch {
            await vms.abortIncoming(spec.id)
            throw error
        }
    }

    /// Resumes the guest here; returns QEMU's timestamp of the RESUME (0 if unknown).
    private func commitIncoming(_ id: String, from peer: PeerIdentity) async throws -> Double {
        guard let state = incoming[id], state.source == peer.hostID else {
            throw ControlError.notFound("no incoming migration \(id) from \(peer.hostID)")
        }
        incoming[id] = nil
        streamAuthorizations.withLockedValue { $0[id] = nil }
        let received = ContinuousClock.now
        do {
            // The source has sent everything; the destination must have loaded it all.
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                let info = try await state.process.qmp.queryMigrate()
                if info.status == "completed" || info.status == "postcopy-active" { break } // post-copy: run now, pages follow
                if info.status == "failed" { throw ControlError.failed("the destination could not load the guest: \(info.errorDesc ?? "?")") }
                guard ContinuousClock.now < deadline else { throw ControlError.failed("the destination had not loaded the guest after 10 s") }
                try await Task.sleep(for: .milliseconds(2))
            }
            let loaded = ContinuousClock.now
            try await vms.commitIncoming(state.spec)
            let journaled = ContinuousClock.now
            try await state.process.qmp.cont()
            logger.debug("handover timing", metadata: ["migration.load_wait_ms": "\((loaded - received).milliseconds)",
                                                       "migration.journal_ms": "\((journaled - loaded).milliseconds)",
                                                       "migration.cont_ms": "\((ContinuousClock.now - journaled).milliseconds)"])
            try await store.database.write { db in
                try db.execute(sql: "UPDATE migration SET phase = 'done', endedAt = ? WHERE id = ?", arguments: [Date().timeIntervalSince1970, id])
            }
            logger.info("incoming migration committed; the guest runs here", metadata: ["migration.id": "\(id)", "vm.id": "\(state.spec.id)"])
            // Cancelling the watcher ends its event loop, so this waits at most a second.
            let watcher = state.resumed
            let timeout = Task { try? await Task.sleep(for: .seconds(1)); watcher.cancel() }
            let resumedAt = await watcher.value
            timeout.cancel()
            return resumedAt ?? 0
        } catch {
            state.resumed.cancel()
            let tail = state.process.directory.qemuLogTail(5).joined(separator: " | ")
            await vms.abortIncoming(state.spec.id)
            throw ControlError.failed("\(error)" + (tail.isEmpty ? "" : "; destination QEMU log: \(tail)"))
        }
    }

    private func abortIncoming(_ id: String, reason: String) async {
        guard let state = incoming.removeValue(forKey: id) else { return }
        state.resumed.cancel()
        streamAuthorizations.withLockedValue { $0[id] = nil }
        await vms.abortIncoming(state.spec.id)
        _ = try? await store.database.write { db in
            try db.execute(sql: "UPDATE migration SET phase = 'aborted', endedAt = ?, error = ? WHERE id = ?",
                           arguments: [Date().timeIntervalSince1970, reason, id])
        }
        logger.info("incoming migration discarded", metadata: ["migration.id": "\(id)", "reason": "\(reason)"])
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}
