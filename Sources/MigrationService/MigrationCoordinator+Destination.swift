import ControlAPI
import Foundation
import Hypervisor
public import MeshWire
import Migration

extension MigrationCoordinator {
    /// Why this host cannot take `spec` now, or nil. Synchronous on purpose: the caller reserves
    /// the slot before its next suspension point.
    func admissionRefusal(_ spec: VMSpec, diskBytes: UInt64, storageRoot: String? = nil) -> String? {
        let storageRoot = storageRoot ?? vms.storageRoot
        // Both limits before anything else: at either one the answer is busy (Protocol.md §6.4),
        // and only then may its text say so.
        if let atLimit = incomingLimitRefusal(diskBytes: diskBytes) { return atLimit }
        let admitted = incoming.values.filter { $0.machine.phase == .admitted }
        let limits = self.limits
        guard let available = HostMemory.availableMiB() else {
            // Fail closed: without the figure, a reservation could overcommit the host.
            return "\(hostID) cannot read its free memory (/proc/meminfo); it admits nothing until it can"
        }
        let reserved = admitting.values.reduce(0) { $0 + $1.memoryMiB } + admitted.reduce(0) { $0 + $1.environment.memoryMiB }
        let need = spec.memoryMiB + 64 // QEMU's own overhead, roughly
        if available - reserved - limits.hostReserveMiB < need {
            return "not enough memory on \(hostID): the VM needs \(need) MiB, \(available - reserved - limits.hostReserveMiB) MiB can be reserved"
        }
        guard diskBytes > 0 else { return nil }
        guard let free = HostStorage.availableBytes(at: storageRoot) else {
            // Fail closed, as for memory: an unknown figure could overcommit the file system.
            return "\(hostID) cannot read the free space of its storage directory \(storageRoot); it admits no local disks until it can"
        }
        let reservedDisk = admitting.values.reduce(UInt64(0)) { $0 + $1.diskBytes } + admitted.reduce(UInt64(0)) { $0 + $1.environment.diskBytes }
        let room = free > reservedDisk ? free - reservedDisk : 0
        if room < diskBytes {
            return "\(hostID): \(DiskImageError.noRoom(directory: storageRoot, neededBytes: diskBytes, availableBytes: room))"
        }
        return nil
    }

    /// How long a source should wait before asking a busy destination again, ms.
    static let busyRetryAfterMs: UInt32 = 1000

    /// True when this host already receives its limit of migrations (of migrations with local
    /// disks, for one that has some): a refusal then is "busy", worth asking again.
    func isAtIncomingLimit(diskBytes: UInt64) -> Bool { incomingLimitRefusal(diskBytes: diskBytes) != nil }

    /// Why this host is at its limit of incoming migrations (of those with local disks, for one
    /// that has some), or nil.
    private func incomingLimitRefusal(diskBytes: UInt64) -> String? {
        let admitted = incoming.values.filter { $0.machine.phase == .admitted }
        let count = admitted.count + admitting.count
        if count >= limits.incoming {
            return "\(hostID) already receives \(count) migrations (limit \(limits.incoming))"
        }
        let withDisks = admitting.values.filter { $0.diskBytes > 0 }.count + admitted.filter { $0.environment.diskBytes > 0 }.count
        if diskBytes > 0, withDisks >= limits.incomingWithDisks {
            return "\(hostID) already receives \(withDisks) migrations with local disks (limit \(limits.incomingWithDisks)); retry when one ends"
        }
        return nil
    }

    /// The spec as it runs here: each local disk the source described becomes a new image in
    /// this migration's own storage directory (same format). Throws, naming the disk, when the
    /// descriptions do not match the spec's local disks one for one.
    func localizeDisks(_ spec: VMSpec, _ disks: [Hostmesh_V1_DiskImage], migration id: String, storageRoot: String) throws -> (VMSpec, UInt64) {
        var spec = spec
        var reserve: UInt64 = 0
        let local = Set(spec.disks.indices.filter { !spec.disks[$0].shared })
        guard Set(disks.map { Int($0.index) }) == local, disks.count == local.count else {
            throw MigrationServiceError.malformed("the disk descriptions (\(disks.map(\.index).sorted())) do not match the VM's local disks (\(local.sorted()))")
        }
        for disk in disks {
            let index = Int(disk.index)
            guard let format = VMSpec.Disk.Format(rawValue: disk.format), format == spec.disks[index].format else {
                throw MigrationServiceError.malformed("disk \(index) is described as \(disk.format), the spec says \(spec.disks[index].format.rawValue)")
            }
            guard disk.virtualSize > 0 else { throw MigrationServiceError.malformed("disk \(index) has no size") }
            spec.disks[index].path = "\(storageRoot)/\(id)/disk\(index).\(format.rawValue)"
            reserve += DiskImageInfo.reservation(virtualSize: disk.virtualSize, allocatedBytes: disk.allocatedBytes, thin: disk.thin)
        }
        return (spec, reserve)
    }

    /// A prepare from a host of another domain (`peer` is `host@domain`, Protocol.md §6.10) that
    /// the cross-domain gate checked against this domain's grant and mapped: its spec already names
    /// this domain's networks; its local disks go under `storageRoot` (the grant's storage
    /// directory), and its ports are created afresh. The rest is the same admission and handover.
    /// `freshPorts` false: the VM's networks are stretched (§8.9) and its ports are imported from
    /// the prepare's records, as inside a domain.
    public func prepareAcrossDomains(_ prepare: Hostmesh_V1_MigrationPrepare, from peer: String, storageRoot: String,
                                     freshPorts: Bool = true) async -> Hostmesh_V1_AgentEnvelope {
        await acquire(prepare.migrationID)
        defer { relinquish(prepare.migrationID) }
        return await prepareIncoming(prepare, from: peer, crossDomainStorage: storageRoot, freshPorts: freshPorts)
    }

    func prepareIncoming(_ prepare: Hostmesh_V1_MigrationPrepare, from peer: String, crossDomainStorage: String? = nil,
                         freshPorts: Bool = false) async -> Hostmesh_V1_AgentEnvelope {
        let id = prepare.migrationID
        let storageRoot = crossDomainStorage ?? vms.storageRoot
        func refuse(_ why: String) -> Hostmesh_V1_AgentEnvelope {
            var reply = Hostmesh_V1_AgentEnvelope()
            reply.migrationPrepared.migrationID = id
            reply.migrationPrepared.error = why
            return reply
        }
        let spec: VMSpec, settings: MigrationSettings, diskBytes: UInt64
        guard let choice = AcceleratorChoice(rawValue: prepare.accelerator) else { return refuse("malformed request: unknown accelerator \(prepare.accelerator)") }
        // The id names a directory here (its disk images): only what a UUID is made of.
        guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            return refuse("malformed request: migration id \(id.prefix(70)) is not a UUID")
        }
        do {
            let given = try JSONDecoder().decode(VMSpec.self, from: Data(prepare.vmSpecJson.utf8))
            try given.validate() // before any figure is taken from it: a peer's spec is input like any other
            settings = try JSONDecoder().decode(MigrationSettings.self, from: Data(prepare.settingsJson.utf8))
            (spec, diskBytes) = try localizeDisks(given, prepare.disks, migration: id, storageRoot: storageRoot)
        } catch {
            return refuse("malformed request: \(error)")
        }
        // An older source does not say: it padded TCG guests (Protocol.md §6.1). Whether this
        // host's QEMU can run the figure safely is decided when QEMU starts (`GuestRAM.refusal`).
        let memoryKiB = prepare.memoryKib == 0 ? GuestRAM.legacyKiB(memoryMiB: spec.memoryMiB, accelerator: choice) : Int(clamping: prepare.memoryKib)
        guard GuestRAM.explains(kib: memoryKiB, memoryMiB: spec.memoryMiB) else {
            return refuse("malformed request: the source gives the guest \(prepare.memoryKib) KiB of RAM, but its spec's \(spec.memoryMiB) MiB "
                          + "allows only \(spec.memoryMiB * 1024) or \(spec.memoryMiB * 1024 + 8) KiB (Protocol.md §6.1)")
        }
        guard incoming[id] == nil else { return refuse("migration \(id) is already known here") }
        guard let sourceEpoch = try? wireEpoch(prepare.epoch, "the source's epoch") else { // the reason is the refusal below
            return refuse("the source's epoch \(prepare.epoch) is not a valid epoch")
        }
        // Busy (at an incoming limit): the source may ask again (Protocol.md §6.4, busy and the queue).
        let busy = isAtIncomingLimit(diskBytes: diskBytes)
        var refusal = admissionRefusal(spec, diskBytes: diskBytes, storageRoot: storageRoot)
        if refusal == nil { admitting[id] = Reservation(memoryMiB: spec.memoryMiB, diskBytes: diskBytes) }
        defer { admitting[id] = nil } // from here on `incoming` holds it, or it failed
        if refusal == nil {
            do {
                if let newer = try await journal.newerOwner(of: spec.id, above: sourceEpoch), newer.owner != peer {
                    // The source's copy is stale (it has not heard yet): taking it would make a second owner.
                    refusal = "\(newer.owner) owns \(spec.name) at epoch \(newer.epoch), above the source's \(prepare.epoch): its copy is stale and must not move"
                }
            } catch {
                // Fail closed: a stale copy cannot be ruled out.
                refusal = "\(hostID) cannot read its ownership records (\(error)), so it cannot rule out a newer owner of \(spec.name); fix its store and retry"
            }
        }
        if refusal == nil {
            // The VM's id is this migration's from here on; nothing under it is touched otherwise.
            do { try await vms.reserveIncoming(spec) } catch let error as ControlError { refusal = error.message } catch { refusal = "\(error)" }
        }
        let run = IncomingRun(context: context, id: id, spec: spec, source: peer, epoch: sourceEpoch + 1,
                              prepare: .init(settings: settings, accelerator: choice, memoryKiB: memoryKiB, portStates: prepare.portStates.map { [UInt8]($0) },
                                             disks: prepare.disks, diskBytes: diskBytes, storageRoot: storageRoot,
                                             freshPorts: crossDomainStorage != nil && freshPorts))
        var executor = DestinationExecutor(machine: DestinationMigration(id: id), environment: run)
        await executor.handle(.prepare(refusal: refusal))
        if executor.machine.phase == .admitted {
            incoming[id] = executor
            begun += 1
        }
        guard var reply = await run.takeReply() else { return refuse("the admission ended without an answer") }
        if busy, !reply.migrationPrepared.error.isEmpty { reply.migrationPrepared.retryAfterMs = Self.busyRetryAfterMs }
        return reply
    }

    /// The answer to a commit, or nil when none can be given yet (the guest runs here but that is
    /// not on disk): the source then goes in doubt and asks again.
    func commitIncoming(_ id: String, deltas: [[UInt8]], evidence: [Hostmesh_V1_OwnershipEvidenceLink] = [], from peer: String) async -> Hostmesh_V1_AgentEnvelope? {
        guard var executor = incoming[id] else {
            // Unknown or discarded here: the machine (from the journal, if any) refuses a late commit.
            return await lateCommit(id)
        }
        let run = executor.environment
        guard run.source == peer else {
            var reply = Hostmesh_V1_AgentEnvelope()
            reply.migrationCommitted.migrationID = id
            reply.migrationCommitted.error = "migration \(id) was admitted from \(run.source), not \(peer)"
            return reply
        }
        await run.use(deltas: deltas, evidence: evidence)
        let loaded = await run.guestLoaded()
        await executor.handle(.commit(loaded: loaded))
        keep(executor)
        guard var reply = await run.takeReply() else { return nil }
        if reply.migrationCommitted.error.isEmpty {
            reply.migrationCommitted.resumedAt = await run.resumedAt()
        }
        return reply
    }

    /// A commit for a migration not under way here: answered from the journal.
    private func lateCommit(_ id: String) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.migrationCommitted.migrationID = id
        do {
            guard let row = try await journal.migration(id), row.role == .destination,
                  let phase = DestinationMigration.Phase(rawValue: row.phase) else {
                reply.migrationCommitted.error = "unknown migration"
                return reply
            }
            guard phase == .discarded else {
                reply.migrationCommitted.error = "migration \(id) is \(phase.rawValue) here, not waiting for a commit"
                return reply
            }
            var machine = DestinationMigration(id: id, journaled: phase, reason: row.error ?? "")
            for case .replyCommitted(let error) in machine.handle(.commit(loaded: false)) { reply.migrationCommitted.error = error ?? "" }
        } catch {
            reply.migrationCommitted.error = "cannot read the journal here (\(error)); nothing will run here for this commit"
        }
        if reply.migrationCommitted.error.isEmpty { reply.migrationCommitted.error = "unknown migration" }
        return reply
    }

    func abortIncoming(_ id: String, reason: String, from peer: String) async {
        guard var executor = incoming[id], executor.environment.source == peer else { return }
        await executor.handle(.abort(reason))
        keep(executor)
    }

    /// Keeps an incoming migration in memory while it is admitted or committed.
    private func keep(_ executor: DestinationExecutor<IncomingRun>) {
        let id = executor.machine.id
        incoming[id] = executor.machine.phase == .admitted || executor.machine.phase == .committed ? executor : nil
    }

    func verdict(_ id: String) async -> Hostmesh_V1_AgentEnvelope? {
        var verdict = incoming[id]?.machine.verdict
        if verdict == nil {
            do {
                if let row = try await journal.migration(id), row.role == .destination,
                   let phase = DestinationMigration.Phase(rawValue: row.phase) {
                    verdict = DestinationMigration(id: id, journaled: phase, reason: row.error ?? "").verdict
                } else {
                    verdict = .unknown
                }
            } catch {
                // Fail closed: `unknown` would let the source take the guest back while it may
                // run here. No answer keeps the source in doubt until the journal reads again.
                logger.error("cannot read the journal to answer a migration query", metadata: ["migration.id": "\(id)", "error": "\(error)"])
                return nil
            }
        }
        var reply = Hostmesh_V1_AgentEnvelope()
        reply.migrationVerdict.migrationID = id
        switch verdict ?? .unknown {
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
