import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshTime
import MigrationService

/// Moves a running VM's disk to another file on this host (`hostmesh vm move-storage`,
/// Protocol.md §6.8): journaled phase by phase, so that a crash at any point leaves exactly one
/// file that holds every write the guest saw acknowledged, and the VM's spec naming it.
struct StorageMover: Sendable {
    let vms: VMManager
    let journal: StorageMoveJournal
    let logger: Logger
    /// Sees each journaled phase (fault-injection tests only; production: none).
    let observer: any MigrationObserver
    /// Longest wait for the mirror to synchronise.
    var readyTimeout: Duration = .seconds(600)

    init(store: AgentStore, vms: VMManager, observer: any MigrationObserver = NoMigrationObserver(), logger: Logger) {
        self.vms = vms
        journal = StorageMoveJournal(store: store)
        self.observer = observer
        self.logger = logger
    }

    // MARK: - A move

    func move(_ request: MoveStorageRequest, progress: @escaping @Sendable (BlockJobInfo) async -> Void = { _ in }) async throws -> StorageMoveReport {
        let started = ContinuousClock.now
        let (vm, spec, process) = try await vms.beginStorageMove(request.vm)
        do {
            let report = try await perform(request, vm: vm, spec: spec, process: process, started: started, progress: progress)
            await vms.endStorageMove(vm.id)
            return report
        } catch StorageMoveError.switchNotJournaled(let message) {
            // The VM stays marked: QEMU reads the new file while its spec names the old one, so
            // nothing (a migration, a restart) may act on the spec until recovery has finished.
            throw ControlError.failed(message)
        } catch {
            await vms.endStorageMove(vm.id)
            throw error
        }
    }

    private func perform(_ request: MoveStorageRequest, vm: StoredVM, spec: VMSpec, process: VMProcess, started: ContinuousClock.Instant,
                         progress: @escaping @Sendable (BlockJobInfo) async -> Void) async throws -> StorageMoveReport {
        let index = try Self.diskIndex(request.disk, in: spec)
        let disk = spec.disks[index]
        let target = try Self.targetPath(request.to, from: disk.path)
        try await refuseBadTarget(target, disk: disk, vm: vm.id)
        let image: DiskImageInfo
        do { image = try await QEMUImageTool.info(disk.path) } catch { throw ControlError.failed("cannot read disk \(index) (\(disk.path)): \(error)") }
        do { _ = try image.checked(against: disk) } catch { throw ControlError.badRequest("\(error)") }
        let directory = (target as NSString).deletingLastPathComponent
        let needed = DiskImageInfo.reservation(virtualSize: image.virtualSize, allocatedBytes: image.allocatedBytes, thin: image.thin)
        guard let available = HostStorage.availableBytes(at: directory) else {
            throw ControlError.failed("cannot read the free space of \(directory): a move that might fill it is refused")
        }
        guard available >= needed else {
            throw ControlError.unavailable("\(DiskImageError.noRoom(directory: directory, neededBytes: needed, availableBytes: available))")
        }

        let id = UUID().uuidString.lowercased()
        let diskMove = DiskMove(qmp: process.qmp, index: index, target: target, format: disk.format.rawValue, tag: String(id.prefix(8)))
        var row = StoredStorageMove(id: id, vmId: vm.id, vmName: vm.name, diskIndex: index, fromPath: disk.path, toPath: target,
                                    targetNode: diskMove.targetNode, phase: StorageMovePhase.copying.rawValue,
                                    startedAt: Date().timeIntervalSince1970)
        do { try await journal.begin(row) } catch { throw ControlError.failed("cannot journal the storage move, so it does not start: \(error)") }
        logger.info("storage move started", metadata: ["vm.id": "\(vm.id)", "disk.index": "\(index)", "disk.from": "\(disk.path)", "disk.to": "\(target)"])
        await observer.reached(.storageMove(StorageMovePhase.copying.rawValue))

        // Copying: the old file stays the disk; any failure rolls back to it.
        let source: (node: String, file: String)
        let ready: BlockJobInfo
        do {
            do { try await QEMUImageTool.create(target, format: disk.format, virtualSize: image.virtualSize, thin: image.thin) } catch {
                throw DiskMirrorError("\(error)")
            }
            source = try await diskMove.start()
            ready = try await diskMove.waitUntilReady(timeout: readyTimeout) { jobs in
                if let job = jobs.first { await progress(job) }
            }
        } catch {
            await rollBack(row, diskMove: diskMove, process: process, resume: false, reason: "\(error)")
            throw ControlError.failed("cannot move disk \(index) of \(vm.name): \(error); it stays on \(disk.path)")
        }

        // Pivoting: the guest pauses, so that nothing is written while the device changes files.
        let pauseStarted = ContinuousClock.now
        do { try await process.qmp.stop() } catch {
            await rollBack(row, diskMove: diskMove, process: process, resume: false, reason: "cannot pause the guest: \(error)")
            throw ControlError.failed("cannot pause \(vm.name) to switch its disk: \(error); it stays on \(disk.path)")
        }
        do { try await journal.set(id, .pivoting, sourceNode: source.node) } catch {
            await rollBack(row, diskMove: diskMove, process: process, resume: true, reason: "cannot journal the switch: \(error)")
            throw ControlError.failed("cannot journal the switch of disk \(index), so it stays on \(disk.path): \(error)")
        }
        row.sourceNode = source.node
        await observer.reached(.storageMove(StorageMovePhase.pivoting.rawValue))
        do { try await diskMove.pivot() } catch {
            // Which file does the device read now? Only that decides.
            let now = try? await process.qmp.diskNode(index) // unanswered: treated as "not switched", and rolled back below
            if now?.node != diskMove.targetNode {
                await rollBack(row, diskMove: diskMove, process: process, resume: true, reason: "\(error)")
                throw ControlError.failed("cannot switch disk \(index) of \(vm.name) to \(target): \(error); it stays on \(disk.path)")
            }
        }
        // Switched: journaled with the spec before the guest runs on the new file.
        do { try await journal.switched(id, vm: vm.id, disk: index, to: target) } catch {
            // QEMU reads the new file but nothing durable says so: the guest stays paused (nothing is
            // written to either file) until a restarted agent's recovery finishes the move.
            await vms.note(vm.id, problem: "paused: disk \(index) now reads \(target), but the switch could not be journaled (\(error)); restart the agent once its store is writable, and its recovery resumes the guest")
            logger.error("storage move switched files but cannot journal it: the guest stays paused", metadata: [
                "vm.id": "\(vm.id)", "disk.to": "\(target)", "error": "\(error)"])
            throw StorageMoveError.switchNotJournaled("disk \(index) of \(vm.name) switched to \(target) but the switch could not be journaled: the guest stays paused until the agent restarts with a writable store")
        }
        await observer.reached(.storageMove(StorageMovePhase.switched.rawValue))
        do { try await process.qmp.cont() } catch {
            await vms.note(vm.id, problem: "paused after its disk moved: QEMU refused to resume (\(error)); `hostmesh vm stop` then `vm start` brings it back from \(target)")
            logger.error("cannot resume the guest after its disk moved", metadata: ["vm.id": "\(vm.id)", "error": "\(error)"])
        }
        let pause = ContinuousClock.now - pauseStarted
        let deletedOld = await finish(row, process: process)
        let report = StorageMoveReport(vm: vm.name, disk: index, from: disk.path, to: target, bytes: ready.len,
                                       totalMs: (ContinuousClock.now - started).inMilliseconds, pauseMs: pause.inMilliseconds, deletedOld: deletedOld)
        logger.info("storage move done", metadata: ["vm.id": "\(vm.id)", "disk.to": "\(target)", "disk.bytes": "\(ready.len)",
                                                    "move.total_ms": "\(report.totalMs)", "move.pause_ms": "\(report.pauseMs)"])
        return report
    }

    /// The disk a request names: an index, or the current path.
    static func diskIndex(_ reference: String, in spec: VMSpec) throws -> Int {
        if let index = Int(reference) {
            guard spec.disks.indices.contains(index) else {
                throw ControlError.notFound("\(spec.name) has \(spec.disks.count) disk(s); disk \(index) does not exist (`hostmesh vm show \(spec.name)` lists them)")
            }
            return index
        }
        let wanted = URL(fileURLWithPath: reference).standardizedFileURL.path
        guard let index = spec.disks.firstIndex(where: { URL(fileURLWithPath: $0.path).standardizedFileURL.path == wanted }) else {
            throw ControlError.notFound("\(spec.name) has no disk at \(reference) (`hostmesh vm show \(spec.name)` lists its disks)")
        }
        return index
    }

    /// The target file: `to` itself, or the disk's file name inside `to` when it is a directory.
    static func targetPath(_ to: String, from current: String) throws -> String {
        var isDirectory: ObjCBool = false
        let to = URL(fileURLWithPath: to).standardizedFileURL.path
        if FileManager.default.fileExists(atPath: to, isDirectory: &isDirectory), isDirectory.boolValue {
            return (to as NSString).appendingPathComponent((current as NSString).lastPathComponent)
        }
        return to
    }

    private func refuseBadTarget(_ target: String, disk: VMSpec.Disk, vm: String) async throws {
        let resolvedSource = URL(fileURLWithPath: disk.path).resolvingSymlinksInPath().path
        guard URL(fileURLWithPath: target).resolvingSymlinksInPath().path != resolvedSource else {
            throw ControlError.badRequest("\(target) is the disk's own file: name another directory or file")
        }
        guard !FileManager.default.fileExists(atPath: target) else {
            throw ControlError.conflict("\(target) already exists: a move never overwrites a file; remove it or name another")
        }
        let directory = (target as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ControlError.notFound("\(directory) is not a directory: create it first")
        }
        guard FileManager.default.isWritableFile(atPath: directory) else {
            throw ControlError.badRequest("\(directory) is not writable by the agent: fix its permissions")
        }
        if let other = try await vms.otherUser(ofDisk: disk.path, besides: vm) {
            throw ControlError.conflict("the disk \(disk.path) is also used by VM \(other): a move would leave it on a file nobody writes; move neither, or stop \(other)")
        }
    }

    // MARK: - Ends

    /// Back to the old file: the mirror stops, the target goes; the guest resumes if the move
    /// paused it. Journals `aborted` (best effort: recovery of `copying`/`pivoting` reaches the
    /// same end).
    private func rollBack(_ row: StoredStorageMove, diskMove: DiskMove?, process: VMProcess?, resume: Bool, reason: String) async {
        if let process {
            if let diskMove { await diskMove.abandon() } else {
                await DiskMove.abandon(qmp: process.qmp, index: row.diskIndex, targetNode: row.targetNode)
            }
        }
        if FileManager.default.fileExists(atPath: row.toPath) {
            do { try FileManager.default.removeItem(atPath: row.toPath) } catch {
                logger.warning("cannot delete a storage move's partial target; delete it by hand", metadata: ["disk.to": "\(row.toPath)", "error": "\(error)"])
            }
        }
        if resume, let process {
            do { try await process.qmp.cont() } catch {
                await vms.note(row.vmId, problem: "paused: a storage move that rolled back could not resume it (\(error))")
            }
        }
        do { try await journal.set(row.id, .aborted, error: reason) } catch {
            logger.error("cannot journal a storage move's roll-back; the next start rolls it back again", metadata: ["move.id": "\(row.id)", "error": "\(error)"])
        }
        logger.warning("storage move rolled back", metadata: ["vm.id": "\(row.vmId)", "disk.from": "\(row.fromPath)", "reason": "\(reason)"])
    }

    /// After `switched`: the old nodes go (QEMU closes the old file), the old file is deleted
    /// unless another VM names it, and the move is `done`. Returns whether the old file was deleted.
    private func finish(_ row: StoredStorageMove, process: VMProcess?) async -> Bool {
        if let process, let node = row.sourceNode { await DiskMove.removeNodes(qmp: process.qmp, node: node) }
        var deleted = false
        // Fail closed: an old file another VM names, or whose users cannot be read, stays.
        let unused: Bool
        do { unused = try await vms.otherUser(ofDisk: row.fromPath, besides: row.vmId) == nil } catch {
            logger.warning("a moved disk's old file stays: cannot tell whether another VM uses it; delete it by hand once no VM names it",
                           metadata: ["disk.from": "\(row.fromPath)", "error": "\(error)"])
            unused = false
        }
        if unused, FileManager.default.fileExists(atPath: row.fromPath) {
            do {
                // The name goes now, the blocks in the background (`ImageDeletion`).
                try ImageDeletion.remove(row.fromPath)
                deleted = true
            } catch {
                logger.warning("cannot delete a moved disk's old file; delete it by hand", metadata: ["disk.from": "\(row.fromPath)", "error": "\(error)"])
            }
        }
        do { try await journal.set(row.id, .done) } catch {
            logger.error("cannot journal a storage move as done; the next start finishes it again", metadata: ["move.id": "\(row.id)", "error": "\(error)"])
        }
        return deleted
    }

    // MARK: - Recovery

    /// Finishes or rolls back the moves the last run left unfinished (before anyone is served).
    /// Throws when the journal cannot be read: the agent then refuses to start, as for migrations.
    func recover() async throws {
        let moves: [StoredStorageMove]
        do { moves = try await journal.unfinished() } catch {
            throw AgentError.stateUnreadable(path: "agent.sqlite", reason: "the storage move journal does not read (\(error))",
                                             fix: "repair the database, then start the agent again")
        }
        for row in moves {
            let process = await vms.beginStorageRecovery(row.vmId)
            let qemu = await Self.qemuState(process, row: row)
            guard let phase = StorageMovePhase(rawValue: row.phase) else { continue }
            let action = StorageMoveRecovery.decide(phase: phase, qemu: qemu)
            logger.info("recovering a storage move", metadata: ["vm.id": "\(row.vmId)", "move.phase": "\(row.phase)", "qemu": "\(qemu)", "action": "\(action)"])
            switch action {
            case .rollBack(let resume):
                await rollBack(row, diskMove: nil, process: process, resume: resume, reason: "rolled back by recovery from \(row.phase)")
                await vms.endStorageMove(row.vmId)
            case .finish(let resume):
                if phase != .switched {
                    do { try await journal.switched(row.id, vm: row.vmId, disk: row.diskIndex, to: row.toPath) } catch {
                        // Left marked (as in a live move): the spec still names the old file.
                        await vms.note(row.vmId, problem: "its disk \(row.diskIndex) reads \(row.toPath) but the switch cannot be journaled (\(error)); the guest stays paused until the agent restarts with a writable store")
                        continue
                    }
                }
                if resume, let process {
                    do { try await process.qmp.cont() } catch {
                        await vms.note(row.vmId, problem: "paused after its disk moved: QEMU refused to resume (\(error))")
                    }
                }
                _ = await finish(row, process: process)
                await vms.endStorageMove(row.vmId)
            case .undecided(let reason):
                // Left marked: which file is the disk is not known, so nothing may act on the spec.
                await vms.note(row.vmId, problem: "a storage move of disk \(row.diskIndex) to \(row.toPath) is unfinished: \(reason); restart the agent to try again")
                logger.error("cannot decide an unfinished storage move", metadata: ["vm.id": "\(row.vmId)", "reason": "\(reason)"])
            }
        }
    }

    /// Which file the VM's device reads now, if it has a QEMU.
    static func qemuState(_ process: VMProcess?, row: StoredStorageMove) async -> StorageMoveRecovery.QEMU {
        guard let process, await process.exitIfEnded() == nil else { return .gone }
        guard let node = try? await process.qmp.diskNode(row.diskIndex) else { return .unknown } // QMP silent: undecided
        return node.node == row.targetNode ? .readsTarget : .readsOld
    }
}
