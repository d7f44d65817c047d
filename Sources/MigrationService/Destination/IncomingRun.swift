import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import MeshWire
import Migration

/// The destination side's environment (Protocol.md §6.4, §6.5): carries out
/// `DestinationMigration`'s directives against the journal, QEMU and the switch, and collects
/// the answer owed to the source's message. Messages from the source and recovery after a
/// restart use the same type; recovery has no spec or prepare, and nobody to answer.
actor IncomingRun: DestinationMigrationEnvironment {
    /// What the source's prepare carried.
    struct Prepare: Sendable {
        let settings: MigrationSettings
        let accelerator: AcceleratorChoice
        /// The guest's RAM in KiB as the source runs it (Protocol.md §6.1): QEMU here gets the same.
        let memoryKiB: Int
        let portStates: [[UInt8]]
        /// The local disks to create and receive (§6.7); empty when every disk is shared.
        let disks: [Hostmesh_V1_DiskImage]
        /// Room their images reserve in the storage directory, bytes.
        let diskBytes: UInt64
        /// The directory this migration's images go under (`<root>/<migration id>/`).
        let storageRoot: String
        /// From another domain (Protocol.md §6.10): the ports are created afresh, not imported.
        let freshPorts: Bool
    }

    let context: MigrationContext
    let id: String
    let vmID: String
    /// The source's host id.
    let source: String
    /// The epoch the VM has here once committed (the source's + 1).
    let epoch: Int64
    /// The memory this migration reserves while it is admitted, MiB (0 in recovery: nothing is admitted then).
    let memoryMiB: Int
    /// The room its disk images reserve while it is admitted, bytes (0 in recovery).
    let diskBytes: UInt64
    private(set) var spec: VMSpec?
    private let prepare: Prepare?
    private let logger: Logger
    private(set) var process: VMProcess?
    private var resumedWatcher: Task<Double?, Never>?
    /// The ports' final deltas, from the commit being handled.
    private var deltas: [[UInt8]] = []
    /// The evidence for this host's epoch, from the commit being handled (Protocol.md §6.12).
    private var evidence: [Hostmesh_V1_OwnershipEvidenceLink] = []
    /// The answer to the message being handled, if one is owed.
    private var reply: Hostmesh_V1_AgentEnvelope?

    /// An incoming migration the source just asked for.
    init(context: MigrationContext, id: String, spec: VMSpec, source: String, epoch: Int64, prepare: Prepare) {
        self.context = context
        self.id = id
        vmID = spec.id
        memoryMiB = spec.memoryMiB
        diskBytes = prepare.diskBytes
        self.spec = spec
        self.source = source
        self.epoch = epoch
        self.prepare = prepare
        logger = Self.logger(context, id: id, vm: spec.id)
    }

    /// Recovery (or a late message) for a journaled migration; `process` is its QEMU if it still runs.
    init(context: MigrationContext, recovering row: JournaledMigration, process: VMProcess?) {
        self.context = context
        id = row.id
        vmID = row.vmID
        memoryMiB = 0
        diskBytes = 0
        source = row.peer
        epoch = row.epoch ?? 0
        spec = nil
        prepare = nil
        self.process = process
        logger = Self.logger(context, id: row.id, vm: row.vmID)
    }

    private static func logger(_ context: MigrationContext, id: String, vm: String) -> Logger {
        var log = context.logger
        log[metadataKey: "migration.id"] = "\(id)"
        log[metadataKey: "vm.id"] = "\(vm)"
        return log
    }

    /// The answer owed to the message just handled (taken once).
    func takeReply() -> Hostmesh_V1_AgentEnvelope? {
        defer { reply = nil }
        return reply
    }

    /// This migration's storage directory: the disk images it created, and nothing else.
    private var storageDirectory: String { (prepare?.storageRoot ?? context.vms.storageRoot) + "/" + id }

    /// Where this migration's partial images may be: its storage directory, and in recovery (which
    /// no longer knows whether the VM came from another domain) also this migration's directory
    /// under every federation grant's storage directory (§6.10: disks from another domain go
    /// there). The id is a UUID (checked at the prepare), so each is this migration's own.
    private var partialImageDirectories: [String] {
        guard prepare == nil else { return [storageDirectory] }
        let grants = context.credentials.trust.federation.current.grants.values.map(\.body.storageDirectory).filter { !$0.isEmpty }
        return [storageDirectory] + Set(grants).sorted().map { $0 + "/" + id }
    }

    /// Creates the empty images the source mirrors into, at the paths the spec names (same format
    /// and size, thin where the source is thin).
    private func createImages(_ spec: VMSpec, _ disks: [Hostmesh_V1_DiskImage]) async throws {
        guard !disks.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: storageDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for disk in disks {
            let target = spec.disks[Int(disk.index)]
            try await QEMUImageTool.create(target.path, format: target.format, virtualSize: disk.virtualSize, thin: disk.thin)
        }
        logger.info("created the disk images to receive", metadata: ["migration.disks": "\(disks.count)", "disk.dir": "\(storageDirectory)"])
    }

    /// Sets the ports' final state that comes with a commit.
    func use(deltas: [[UInt8]], evidence: [Hostmesh_V1_OwnershipEvidenceLink] = []) {
        self.deltas = deltas
        self.evidence = evidence
    }

    /// True once QEMU here has the whole guest (or has entered post-copy); waits up to `limit`
    /// for QEMU's `MIGRATION` event (the `events` capability is on for every migration).
    func guestLoaded(within limit: Duration = .seconds(10)) async -> Bool {
        guard let process else { return false }
        // Subscribed before the status is read: a change in between is not missed.
        let events = process.qmp.events()
        do {
            if let known = Self.loaded(try await process.qmp.queryMigrate().status ?? "") { return known }
        } catch {
            return false // QEMU gone or refusing: not loaded
        }
        let outcome = await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                for await event in events {
                    if case .migration(let status) = event.kind, let known = Self.loaded(status) { return known }
                }
                return false // QEMU's event stream ended: it is gone
            }
            group.addTask {
                // Cancelled when the event came first; either way the wait is over.
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let outcome { return outcome }
        // Timed out: one last look (a QEMU that never reported is not loaded).
        return ((try? await process.qmp.queryMigrate()).flatMap { Self.loaded($0.status ?? "") }) ?? false
    }

    /// What a QEMU migration status says about the guest here: loaded, failed, or not yet.
    private static func loaded(_ status: String) -> Bool? {
        switch status {
        case "completed", "postcopy-active": return true
        case "failed", "cancelled": return false
        default: return nil
        }
    }

    /// When the guest resumed here (QEMU's timestamp), waiting up to `limit` for the event.
    func resumedAt(within limit: Duration = .seconds(1)) async -> Double {
        guard let watcher = resumedWatcher else { return 0 }
        let timeout = Task {
            try await Task.sleep(for: limit)
            watcher.cancel()
        }
        defer { timeout.cancel() }
        return await watcher.value ?? 0
    }

    // MARK: - DestinationMigrationEnvironment

    func journal(_ phase: DestinationMigration.Phase, reason: String?) async throws {
        do {
            switch phase {
            case .admitted:
                guard let spec else { throw MigrationServiceError.journal("no VM spec to admit") }
                try await context.journal.beginDestination(id: id, spec: spec, source: source, epoch: epoch)
            case .committed:
                guard let spec else { throw MigrationServiceError.journal("no VM spec to commit") }
                try await context.journal.commitDestination(id: id, spec: spec, epoch: epoch, source: source, evidence: evidence)
                context.streamAuthorizations.withLockedValue { $0[id] = nil }
            case .running:
                try await context.journal.setDestinationRunning(id)
            case .discarded:
                // After a commit, the VM row it wrote goes with the phase.
                try await context.journal.discardDestination(id: id, vm: vmID, epoch: epoch, reason: reason ?? "discarded")
            }
        } catch {
            logger.error("cannot journal the incoming migration's phase", metadata: ["migration.phase": "\(phase)", "error": "\(error)"])
            throw error
        }
        await context.observer.reached(.destination(phase), migration: id, vm: vmID, name: spec?.name ?? vmID, peer: source)
    }

    func launchIncoming() async -> DestinationMigration.Event? {
        guard let spec, let prepare else { return .launchFailed("no prepare to launch from") }
        do {
            // This host's own socket paths for the NICs, and their ports, blocked until the
            // guest announces itself here.
            let directory = context.vms.directory(for: spec.id)
            let local = context.ports?.localize(spec, directory: directory) ?? spec
            self.spec = local
            if prepare.freshPorts { try await context.ports?.attach(local) } else { try await context.ports?.importPorts(local, records: prepare.portStates) }
            try await createImages(local, prepare.disks)
            let process = try await context.vms.beginIncoming(local, epoch: epoch, accelerator: AcceleratorVerdict(choice: prepare.accelerator, reason: "same as the migration source"),
                                                              memoryKiB: prepare.memoryKiB)
            self.process = process
            let events = process.qmp.events()
            let traceLog = logger, traceVM = vmID
            resumedWatcher = Task {
                for await e in events where e.name == "RESUME" {
                    SwitchoverTrace.mark(traceLog, "destination-qemu-resume", vm: traceVM, at: e.timestamp)
                    return e.timestamp
                }
                return nil
            }
            let socket = directory.incomingSocket
            try await IncomingMigration(qmp: process.qmp, settings: prepare.settings).listen(on: "unix:" + socket)
            var nbdSocket: String?
            if !prepare.disks.isEmpty {
                let path = directory.path + "/nbd.sock"
                try await DiskExport(qmp: process.qmp, indices: prepare.disks.map { Int($0.index) }).start(socket: path)
                nbdSocket = path
            }
            context.streamAuthorizations.withLockedValue { $0[id] = StreamAuthorization(source: source, migrationSocket: socket, nbdSocket: nbdSocket) }
            logger.info("admitted incoming migration", metadata: ["migration.source": "\(source)"])
            return .ready
        } catch {
            return .launchFailed("\(error)")
        }
    }

    /// The switchover timeline's last points: the first frames the guest sent after the resume
    /// (`destination-guest-frame-N-<kind>`), read a second later.
    private func traceFirstFrame(_ spec: VMSpec) {
        guard let ports = context.ports, logger.logLevel <= .info else { return }
        let traceLog = logger, traceVM = vmID
        Task {
            // Cancelled only with the agent: then nobody reads the timeline.
            try? await Task.sleep(for: .seconds(1))
            for (index, frame) in await ports.framesFromGuest(spec).enumerated() {
                SwitchoverTrace.mark(traceLog, "destination-guest-frame-\(index + 1)-\(frame.kind)", vm: traceVM, at: frame.at)
            }
        }
    }

    func replyPrepared(refusal: String?) async {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.migrationPrepared.migrationID = id
        envelope.migrationPrepared.error = refusal ?? ""
        reply = envelope
    }

    func resume() async -> DestinationMigration.Event? {
        guard let process else { return .resumeFailed("no QEMU for the guest here") }
        SwitchoverTrace.mark(logger, "destination-commit-received", vm: vmID)
        do {
            // Under a lease, this host's becomes `held` before the guest runs here, and so before
            // the source hears of the commit and releases its own (Protocol.md §9.2, "Leases and
            // handovers"): there is always a held lease of a host that may run the VM.
            try await context.vms.promoteIncoming(vmID, epoch: epoch)
            if let spec {
                do { try await context.ports?.apply(deltas: deltas) } catch {
                    // The ports exist and forward; only the final counters and connection
                    // tracking of the last milliseconds are lost.
                    logger.warning("cannot apply the ports' final state", metadata: ["error": "\(error)"])
                }
                // Nothing but the guest may write its disks from now on.
                if prepare?.disks.isEmpty == false { try await process.qmp.nbdServerStop() }
                SwitchoverTrace.mark(logger, "destination-resume-starts", vm: vmID) // the disks' exports closed by now
                // Committed: the guest runs here and nowhere else from now on (§6.4). Its ports
                // activate before it runs: what it sends at once (answers it had queued at the
                // stop, retransmissions) would be dropped at a blocked port.
                await context.ports?.resuming(spec)
                SwitchoverTrace.mark(logger, "destination-ports-activated", vm: vmID)
                if try await !process.qmp.queryStatus().running { try await process.qmp.cont() }
                SwitchoverTrace.mark(logger, "destination-cont-returned", vm: vmID)
                await context.ports?.resumed(spec)
                traceFirstFrame(spec)
            } else if try await !process.qmp.queryStatus().running {
                // Recovery: whether this VM came with local disks is not known here; without
                // them no NBD server runs and QEMU's refusal says only that.
                try? await process.qmp.nbdServerStop()
                try await process.qmp.cont() // recovery: the ports were re-created with the VM
            }
            // Only now is it an ordinary VM here that stop or migrate may touch.
            await context.vms.adoptIncoming(vmID)
            logger.info("incoming migration committed; the guest runs here", metadata: ["vm.epoch": "\(epoch)"])
            return .resumed
        } catch {
            // A `cont` whose answer was lost may still have run the guest here: QEMU's RESUME
            // says so. Once it ran here (committed), the source must never resume its older copy
            // (on shared storage the guest's writes here would be undone): it stays this host's,
            // and a QEMU that died after its RESUME is a crashed VM here, not a failed migration.
            if await resumedAt(within: .milliseconds(500)) > 0 {
                logger.error("the guest resumed here although its resume reported an error: it stays here", metadata: ["error": "\(error)"])
                await context.vms.adoptIncoming(vmID)
                return .resumed
            }
            // Nothing ran here (QEMU died or refused): discard, and the source takes it back.
            return .resumeFailed("\(error)")
        }
    }

    func replyCommitted(error: String?) async {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.migrationCommitted.migrationID = id
        envelope.migrationCommitted.error = error ?? ""
        reply = envelope
    }

    func discard() async {
        resumedWatcher?.cancel()
        context.streamAuthorizations.withLockedValue { $0[id] = nil }
        if let spec {
            await context.vms.abortIncoming(spec)
        } else {
            await context.vms.discardOrphan(vmID)
        }
        // The partial images go with their migration's directory (the QEMU writing them is gone).
        for directory in partialImageDirectories where FileManager.default.fileExists(atPath: directory) {
            do { try FileManager.default.removeItem(atPath: directory) } catch {
                logger.error("cannot delete a discarded migration's partial disk images", metadata: ["disk.dir": "\(directory)", "error": "\(error)"])
            }
        }
        logger.warning("incoming migration discarded")
    }

    func replyVerdict(_ verdict: DestinationMigration.Verdict) async {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.migrationVerdict.migrationID = id
        switch verdict {
        case .unknown: envelope.migrationVerdict.verdict = .unknown
        case .receiving: envelope.migrationVerdict.verdict = .receiving
        case .committed: envelope.migrationVerdict.verdict = .committed
        case .discarded(let why):
            envelope.migrationVerdict.verdict = .discarded
            envelope.migrationVerdict.reason = why
        }
        reply = envelope
    }
}
