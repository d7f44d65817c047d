import Foundation
import GRDB
import MeshTime
public import Hypervisor
public import Logging
public import ControlAPI
public import MigrationService

/// The VMs this host owns: their specs (durable, in the store) and their QEMU processes.
///
/// After an agent restart, `recover()` re-adopts every QEMU that is still running; it never
/// kills one.
public actor VMManager: MigrationVMRegistry {
    let store: AgentStore
    private let stateDirectory: String
    let logger: Logger
    let options: VMProcess.Options
    var processes: [String: VMProcess] = [:]
    /// What a VM is in the middle of, by id: at most one thing at a time. Marked before the
    /// operation's first suspension point and cleared after its last, so that concurrent control
    /// calls, peer messages and recovery (the actor is reentrant at every `await`) see it.
    var busy: [String: Operation] = [:]

    enum Operation: String {
        case source = "migrating away"
        case destination = "arriving by migration"
        case starting, stopping
        /// Its owner is restarting it in place after its QEMU died (Protocol.md §9.1).
        case restarting = "being restarted after its QEMU died"
        /// This host is starting it because its owner's lease expired (Protocol.md §9.2).
        case takingOver = "being taken over from a host whose lease on it expired"
        case recovering = "being recovered (the agent is finishing what its last run left under way)"
        /// One of its disks is moving to another file on this host (Protocol.md §6.8).
        case movingStorage = "moving a disk to another file (`hostmesh vm move-storage`)"
        /// A handover's outcome is unknown: kept in memory as well as by the VM's hold, so that a
        /// failed hold write cannot leave a copy that start or migrate could resume.
        case inDoubt = "in doubt: its handover's outcome is not known yet (`hostmesh vm resolve` shows the choices)"
        /// Offered to another host to start there (`vm start --place auto`, Protocol.md §10.10).
        case handingOver = "being handed over to the host chosen to start it"
        /// A handover query about it is being answered (`vm resolve --retry` on its old owner).
        case resolving = "the subject of a handover query"
        /// `hostmesh vm pause` or `vm resume` (Protocol.md §7).
        case pausing = "being paused"
        case resuming = "being resumed"
    }

    /// Marks VM `id` busy with `operation`, or says what it is busy with.
    func mark(_ id: String, _ operation: Operation, name: String) throws {
        if let current = busy[id] {
            throw ControlError.conflict(current == .source && operation == .source ? "\(name) is already migrating"
                                        : "\(name) is \(current.rawValue); retry when that ends")
        }
        busy[id] = operation
    }
    var problems: [String: String] = [:]
    /// VMs whose QEMU died and whose restart is due (the restart supervisor's backoff): the
    /// exit and when the restart is due.
    var restartsDue: [String: (reason: String, at: ContinuousClock.Instant)] = [:]
    /// The virtual switch the VMs' NICs plug into (nil: VMs get no network).
    private(set) var network: AgentNetwork?

    /// The cgroup cpu controller for VMs' CPU limits and shares, or why there is none
    /// (nil: not configured, as in-process test agents).
    var cpuGroups: Result<CPUControlGroups, ResourceControlError>?
    /// The cgroup memory controller for VMs' memory limits and reservations, or why there is
    /// none (nil: not configured, as in-process test agents).
    var memoryGroups: Result<MemoryControlGroups, ResourceControlError>?
    /// The pools' CPU allocations (replicated records, pushed by DRS).
    var poolCPU: [String: VMSpec.Allocation] = [:]
    /// The mesh-wide check of a new VM's pool and reservations (installed by DRS).
    var resourceCheck: (@Sendable (VMSpec) async throws -> Void)?

    /// Lease keepers for VMs on shared storage (Protocol.md §9.2); nil: leases are off.
    var leaseKeeping: LeaseKeeping?

    /// The lease keepers this agent started (its children, reaped once they exit), by VM id.
    var keeperChildren: [String: pid_t] = [:]

    /// Runs a lease keeper beside every VM on shared storage started from now on.
    func use(leases: LeaseKeeping) { leaseKeeping = leases }

    /// Plugs VMs into the agent's virtual switch from now on.
    func use(network: AgentNetwork) { self.network = network }

    /// True while the host is in maintenance (Agent/DRS follows the replicated record): no VM is
    /// defined, started or received here.
    private var inMaintenance = false

    /// Enters or leaves maintenance for new, started and incoming VMs.
    func setMaintenance(_ on: Bool) { inMaintenance = on }

    func refuseInMaintenance(_ what: String) throws {
        guard !inMaintenance else {
            throw ControlError.conflict("this host is in maintenance and takes no VM (\(what) refused): place it on another host, or `hostmesh host maintenance exit` first")
        }
    }

    /// A manager over `store`, keeping runtime directories under `<stateDirectory>/vms`.
    public init(store: AgentStore, stateDirectory: String, options: VMProcess.Options = VMProcess.Options(), logger: Logger) {
        self.store = store
        self.stateDirectory = stateDirectory
        self.options = options
        self.logger = logger
    }

    /// Where a VM's QEMU keeps its sockets, pid and console.
    public nonisolated func directory(for id: String) -> VMRuntimeDirectory {
        VMRuntimeDirectory(path: stateDirectory + "/vms/" + id)
    }

    /// Where disk images arriving by migration are created, one directory per migration.
    public nonisolated var storageRoot: String { stateDirectory + "/disks" }

    /// The other VM here whose spec names the image at `path` (besides `vmID`), if any. A spec that
    /// does not decode counts as a user: nothing is deleted or moved that it might name.
    public func otherUser(ofDisk path: String, besides vmID: String) async throws -> String? {
        let vms = try await store.database.read { db in try StoredVM.fetchAll(db) }
        let target = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        for vm in vms where vm.id != vmID {
            guard let spec = try? vm.decodedSpec() else { return vm.name } // unreadable: assume it may use the disk
            if spec.disks.contains(where: { URL(fileURLWithPath: $0.path).standardizedFileURL.resolvingSymlinksInPath().path == target }) {
                return vm.name
            }
        }
        return nil
    }

    /// Re-adopts running QEMUs of VMs that should be running; notes the ones that are not.
    ///
    /// - Throws: `AgentError.stateUnreadable` when the VM table or the runtime directories cannot
    ///   be read: an unreadable table read as empty would make every running QEMU an orphan to kill.
    public func recover() async throws {
        let vms: [StoredVM]
        do { vms = try await store.database.read { db in try StoredVM.fetchAll(db) } } catch {
            throw AgentError.stateUnreadable(
                path: stateDirectory + "/agent.sqlite", reason: "the VM table does not read (\(error))",
                fix: "The agent refuses to start rather than take its running VMs for orphans and kill them: "
                    + "repair the disk, permissions or database (`sqlite3 agent.sqlite 'PRAGMA integrity_check'`), then start it again")
        }
        for vm in vms where vm.desiredState == "running" {
            do {
                let process = try await VMProcess.adopt(directory: directory(for: vm.id), options: options, logger: logger)
                processes[vm.id] = process
                do { try await network?.attach(vm.decodedSpec()) } catch {
                    logger.error("cannot re-create the VM's switch ports: the guest runs without network", metadata: [
                        "vm.id": "\(vm.id)", "error": "\(error)"])
                }
                logger.info("re-adopted running VM", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)", "vm.pid": "\(process.pid)"])
            } catch {
                problems[vm.id] = "not running after agent restart: \(error)"
                logger.warning("VM should be running but is not", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)", "error": "\(error)"])
            }
        }
        // A runtime directory without a VM row is a copy this host does not own (released to
        // another host, or an incoming migration that never committed) whose QEMU outlived an
        // agent crash: it must not linger, let alone run.
        let owned = Set(vms.map(\.id))
        let runtime = stateDirectory + "/vms"
        let directories: [String]
        if FileManager.default.fileExists(atPath: runtime) {
            do { directories = try FileManager.default.contentsOfDirectory(atPath: runtime) } catch {
                throw AgentError.stateUnreadable(
                    path: runtime, reason: "the VMs' runtime directories cannot be listed (\(error))",
                    fix: "The agent refuses to start without knowing whether copies it does not own still run: fix the directory's permissions, then start it again")
            }
        } else {
            directories = [] // no VM ever ran here
        }
        for id in directories where !owned.contains(id) {
            logger.warning("discarding a VM copy this host does not own", metadata: ["vm.id": "\(id)"])
            await discardOrphan(id)
        }
    }

    /// Defines a VM (stopped).
    public func create(_ spec: VMSpec) async throws -> VMInfo {
        try refuseInMaintenance("defining \(spec.name)")
        do {
            try spec.validate()
            try await network?.validate(spec)
        } catch { throw ControlError.badRequest("\(error)") }
        try await checkResources(spec)
        let spec = AgentNetwork.localize(spec, directory: directory(for: spec.id))
        let record = try StoredVM(spec: spec, desiredState: "stopped")
        try await store.database.write { db in
            if try StoredVM.filter(Column("name") == spec.name).fetchCount(db) > 0 {
                throw ControlError.conflict("a VM named \(spec.name) already exists on this host")
            }
            if try StoredVM.exists(db, key: spec.id) { throw ControlError.conflict("VM id \(spec.id) already exists on this host") }
            // A VM that left for another domain keeps its id and MACs (Protocol.md §6.10).
            if let conflict = try TombstoneStore.conflict(db, with: spec) { throw ControlError.conflict(conflict) }
            try record.insert(db)
        }
        logger.info("VM defined", metadata: ["vm.id": "\(spec.id)", "vm.name": "\(spec.name)"])
        return try await info(spec.id)
    }

    /// Starts a defined VM.
    public func start(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        try refuseInMaintenance("starting \(vm.name)")
        // A held VM may be running elsewhere: starting this copy could make two.
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        try mark(vm.id, .starting, name: vm.name)
        defer { busy[vm.id] = nil }
        return try await startMarked(vm)
    }

    /// Starts VM `vm`, already marked busy by the caller (who clears the mark).
    func startMarked(_ vm: StoredVM) async throws -> VMInfo {
        if let process = processes[vm.id], await process.exitIfEnded() == nil { return try await info(vm.id) }
        // Read again under the mark: a hold (fencing, an in-doubt handover) may have come meanwhile.
        if let hold = try await find(vm.id).hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        let spec = try vm.decodedSpec()
        // Admission: its reservations fit beside the running VMs', its limits can be enforced.
        if let refusal = try await reservationRefusal(spec) { throw ControlError.conflict("cannot start \(vm.name): \(refusal)") }
        if let refusal = controlRefusal(spec) { throw ControlError.unavailable("cannot start \(vm.name): \(refusal)") }
        try await setDesired(vm.id, "running")
        do {
            try await network?.attach(spec)
            // On shared storage with leases on: the keeper holds the lease before QEMU starts (§9.2).
            try await startLeaseKeeper(spec, epoch: vm.epoch)
            processes[vm.id] = try await launchControlled(spec, options: launchOptions(for: spec))
            problems[vm.id] = nil
        } catch {
            await stopLeaseKeeper(vm.id)
            try await setDesired(vm.id, "stopped")
            throw ControlError.failed("cannot start \(vm.name): \(error)")
        }
        // Fenced while QEMU was starting (the fence found no process to pause): pause it now.
        if let hold = try await find(vm.id).hold {
            var paused = true
            if let process = processes[vm.id] { paused = await pauseFenced(vm.id, process) }
            throw ControlError.conflict("\(vm.name) was fenced while it started and is \(paused ? "paused" : "stopped (its QEMU would not pause)"): \(hold)")
        }
        logger.info("VM started", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// Stops a VM (QEMU quits; SIGKILL if it will not).
    public func stop(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        try mark(vm.id, .stopping, name: vm.name)
        defer { busy[vm.id] = nil }
        try await setDesired(vm.id, "stopped")
        // Released (no other host is to take it over) while QEMU quits.
        let process = processes.removeValue(forKey: vm.id)
        await stopLeaseKeeper(vm.id) {
            if let process {
                await process.stop()
                await process.qmp.close()
            }
        }
        // A spec that does not decode never got ports or a cgroup: attaching them needs it too.
        if let spec = try? vm.decodedSpec() {
            await network?.detach(spec)
            releaseControlGroups(spec)
        }
        problems[vm.id] = nil
        logger.info("VM stopped", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// All VMs on this host.
    public func list() async throws -> [VMInfo] {
        let vms = try await store.database.read { db in try StoredVM.order(Column("name")).fetchAll(db) }
        var out: [VMInfo] = []
        for vm in vms {
            // The actor is reentrant: a VM released or discarded while this list awaits is gone,
            // not an error.
            do { out.append(try await info(vm.id)) } catch let error as ControlError where error.code == "not_found" { continue }
        }
        return out
    }

    /// One VM with its spec and migration history.
    public func show(_ reference: String) async throws -> VMDetails {
        let vm = try await find(reference)
        let history = try await store.database.read { db in
            try StoredMigration.filter(Column("vmId") == vm.id).order(Column("startedAt").desc).fetchAll(db)
        }
        let spec = try vm.decodedSpec()
        return VMDetails(info: try await info(vm.id), spec: spec, migrations: history.map(MigrationRecord.init),
                         restartElsewhere: Self.restartElsewhere(spec, leases: leaseKeeping != nil,
                                                                 restartDefault: leaseKeeping?.restartDefault ?? .no))
    }

    /// The last `lines` lines of the VM's serial console.
    public func consoleLog(_ reference: String, lines: Int) async throws -> String {
        let vm = try await find(reference)
        let text = directory(for: vm.id).readConsole()
        // Console lines end in "\r\n", which Swift treats as one Character: split on any newline.
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).suffix(max(lines, 0)).joined(separator: "\n")
    }

    /// The running QEMU of a VM.
    public func process(_ id: String) -> VMProcess? { processes[id] }

    /// A VM by name or id, as migrations see it.
    public func lookUp(_ reference: String) async throws -> RegisteredVM {
        let vm = try await find(reference)
        // Nil when it does not decode, as `RegisteredVM.spec` says: its users only skip port work then.
        return RegisteredVM(id: vm.id, name: vm.name, epoch: vm.epoch, hold: vm.hold, spec: try? vm.decodedSpec())
    }

    /// Finds a VM by name or id.
    public func find(_ reference: String) async throws -> StoredVM {
        let found = try await store.database.read { db in
            try StoredVM.fetchOne(db, key: reference) ?? StoredVM.filter(Column("name") == reference).fetchOne(db)
        }
        guard let found else { throw ControlError.notFound("no VM named or with id \(reference) on this host") }
        return found
    }

    /// The pid of `id`'s QEMU while it has not been seen to exit (checked now, never waits; no QMP).
    func runningProcess(_ id: String) async -> pid_t? {
        guard let process = processes[id], await process.exitIfEnded() == nil else { return nil }
        return process.pid
    }

    func info(_ id: String) async throws -> VMInfo {
        guard let vm = try await store.database.read({ db in try StoredVM.fetchOne(db, key: id) }) else {
            throw ControlError.notFound("no VM \(id)")
        }
        let spec = try vm.decodedSpec()
        var info = VMInfo(id: vm.id, name: vm.name, state: vm.desiredState, pid: nil, vcpus: spec.vcpus, memoryMiB: spec.memoryMiB,
                          accelerator: nil, qemuStatus: nil, problem: problems[vm.id])
        if let process = processes[vm.id] {
            if let exit = await process.exitIfEnded() {
                info.state = vm.desiredState == "running" ? "crashed" : "stopped"
                info.problem = "QEMU exited (\(exit.status)): \(exit.logTail.suffix(3).joined(separator: " | "))"
            } else {
                info.pid = process.pid
                info.accelerator = "\(process.record.accelerator)"
                // For display: a QMP that does not answer shows as "unknown"; nothing decides on it.
                info.qemuStatus = (try? await process.qmp.queryStatus())?.status.rawValue
                info.state = info.qemuStatus == "running" ? "running" : (info.qemuStatus ?? "unknown")
            }
        } else if vm.desiredState == "running" {
            info.state = "crashed"
        }
        if info.state == "crashed" {
            // Said plainly: no copy of this guest runs anywhere (this host owns it, and its QEMU is gone).
            info.problem = VMInfo.lost + (info.problem.map { ": \($0)" } ?? "")
            if let due = restartsDue[vm.id] {
                let wait = max(0, (due.at - ContinuousClock.now).inSeconds)
                info.state = "restarting"
                info.problem = VMInfo.lost + "; " + due.reason + String(format: "; restarting in %.1f s", wait)
            }
        }
        if let operation = busy[vm.id] {
            switch operation {
            case .source: info.state = "migrating"
            case .destination: info.state = "incoming"
            case .recovering: info.state = "recovering"
            case .inDoubt: info.state = "in-doubt"
            case .restarting, .takingOver: info.state = "restarting"
            case .movingStorage: info.state = info.qemuStatus == "running" ? "moving-storage" : info.state
            case .starting, .stopping, .handingOver, .resolving, .pausing, .resuming: break
            }
        }
        if let hold = vm.hold {
            info.state = "in-doubt"
            info.problem = hold
        }
        if let failure = vm.restartFailure, info.pid == nil, busy[vm.id] == nil {
            info.state = "failed"
            info.problem = VMInfo.lost + ": " + failure
        }
        info.epoch = vm.epoch
        if vm.restarts > 0 { info.restarts = VMInfo.Restarts(count: vm.restarts, lastReason: vm.lastRestartReason ?? "", lastAt: vm.lastRestartAt) }
        return info
    }

    private func setDesired(_ id: String, _ state: String) async throws {
        try await store.database.write { db in
            // An operator's start or stop begins afresh: a restart given up no longer applies.
            try db.execute(sql: "UPDATE vm SET desiredState = ?, restartFailure = NULL, updatedAt = ? WHERE id = ?",
                           arguments: [state, Date().timeIntervalSince1970, id])
        }
    }

    // MARK: - Migration hooks

    /// Marks a running VM as leaving; returns its spec and QEMU. Only one migration at a time per VM.
    public func beginOutgoing(_ reference: String) async throws -> OutgoingVM {
        let vm = try await find(reference)
        // Held: a handover is in doubt or a newer owner exists; moving this copy could make two.
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        try mark(vm.id, .source, name: vm.name) // undone below if the VM cannot go after all
        guard let process = processes[vm.id], await process.exitIfEnded() == nil else {
            busy[vm.id] = nil
            throw ControlError.conflict("\(vm.name) is not running here; only a running VM can be live-migrated")
        }
        // Paused by an operator (`vm pause`): the destination would run it, and a rollback resume it here.
        do { try await refusePaused(vm, process, "a migration would run it at its destination") } catch {
            busy[vm.id] = nil
            throw error
        }
        // A leased VM moves with its lease (§9.2 "Leases and handovers"): the destination's
        // keeper holds its own lease from before its QEMU starts; this host's is released with
        // the copy (`endOutgoing`).
        do { return OutgoingVM(id: vm.id, name: vm.name, epoch: vm.epoch, spec: try vm.decodedSpec(), process: process) } catch {
            busy[vm.id] = nil
            throw error
        }
    }

    /// Ends an outgoing migration. When the VM was released (its record is already gone from
    /// the store: it lives elsewhere) its QEMU quits; otherwise it stays here.
    public func endOutgoing(_ id: String, released: Bool, inDoubt: Bool = false) async {
        // Last: a quick return of the VM must not meet this teardown. In doubt, it stays marked
        // until the handover is settled (`settled`).
        defer { if busy[id] == .source { busy[id] = inDoubt && !released ? .inDoubt : nil } }
        guard released else { return }
        // The keeper writes `released` (the destination holds the VM's lease now: its `held`
        // landed before it answered the commit) and exits once its QEMU has quit.
        let process = processes.removeValue(forKey: id)
        await stopLeaseKeeper(id) { await process?.stop(quitGrace: .seconds(2)) }
        await process?.qmp.close()
        // Best effort: QEMU has quit; a directory left behind is discarded as an orphan at the next recovery.
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
    }

    /// The incoming VM is this host's now (its record was journaled with the commit).
    public func adoptIncoming(_ id: String) {
        if busy[id] == .destination { busy[id] = nil }
        problems[id] = nil
    }

    /// Kills a QEMU left behind by an incoming migration that never committed (after a restart).
    /// A copy that cannot be killed keeps its runtime directory, so the next recovery tries again
    /// (without it, nothing would ever find that QEMU), and is logged at error for the operator.
    public func discardOrphan(_ id: String) async {
        let directory = directory(for: id)
        // Its lease keeper, if one runs (a migration's destination under a lease), writes
        // `released` and exits with the copy.
        await stopLeaseKeeper(id) {
            do {
                let process = try await VMProcess.adopt(directory: directory, options: self.options, logger: self.logger)
                process.kill()
                await process.stop(quitGrace: .milliseconds(200))
                await process.qmp.close()
            } catch {
                // Not adoptable (no QEMU, or its QMP is gone): kill it only if it really is this VM's QEMU.
                if let pid = directory.readPid(), Self.isQEMU(pid, of: directory) { kill(pid, SIGKILL) }
            }
        }
        if let pid = directory.readPid(), await Self.stillRuns(pid, of: directory) {
            logger.error("cannot kill a VM copy this host does not own: it may still run; kill it by hand", metadata: [
                "vm.id": "\(id)", "vm.pid": "\(pid)", "vm.dir": "\(directory.path)"])
            return
        }
        guard FileManager.default.fileExists(atPath: directory.path) else { return }
        do { try FileManager.default.removeItem(atPath: directory.path) } catch {
            logger.warning("cannot remove a discarded copy's runtime directory (its QEMU is gone); the next recovery retries",
                           metadata: ["vm.id": "\(id)", "error": "\(error)"])
        }
    }

    /// Whether `pid` is the QEMU of `directory` (its argv names the directory's QMP socket).
    private static func isQEMU(_ pid: Int32, of directory: VMRuntimeDirectory) -> Bool {
        // Unreadable: the process is gone (or a zombie, whose cmdline is empty), so it is not running QEMU.
        guard let argv = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8) else { return false }
        return argv.contains(directory.qmpSocket)
    }

    /// Whether `directory`'s QEMU is still alive a second after SIGKILL (it exits within milliseconds).
    private static func stillRuns(_ pid: Int32, of directory: VMRuntimeDirectory) async -> Bool {
        for _ in 0..<50 where isQEMU(pid, of: directory) {
            // A cancelled sleep only ends the wait early; the check below still answers.
            try? await Task.sleep(for: .milliseconds(20))
        }
        return isQEMU(pid, of: directory)
    }

    /// Reserves `spec`'s id for an incoming migration, before anything is journaled or created
    /// for it: refused if the VM exists here or is busy. Only after this may a failure path tear
    /// down what is under that id (`abortIncoming`).
    public func reserveIncoming(_ spec: VMSpec) async throws {
        try refuseInMaintenance("receiving \(spec.name) by migration")
        guard processes[spec.id] == nil else { throw ControlError.conflict("VM \(spec.name) (\(spec.id)) already runs on this host") }
        try mark(spec.id, .destination, name: "VM \(spec.name) (\(spec.id))")
        let exists: Bool
        do {
            exists = try await store.database.read { db in
                try StoredVM.exists(db, key: spec.id) || StoredVM.filter(Column("name") == spec.name).fetchCount(db) > 0
            }
        } catch {
            busy[spec.id] = nil
            throw error
        }
        guard !exists else {
            busy[spec.id] = nil
            throw ControlError.conflict("VM \(spec.name) (\(spec.id)) already exists on this host")
        }
        // Admission of its reservations and limits (Protocol.md §10.9): refused before anything is made.
        let refusal: String?
        do { refusal = try await reservationRefusal(spec) ?? controlRefusal(spec) } catch {
            busy[spec.id] = nil
            throw error
        }
        if let refusal {
            busy[spec.id] = nil
            throw ControlError.conflict("cannot receive \(spec.name): \(refusal)")
        }
    }

    /// Ends a reservation under which nothing was created.
    func cancelReservation(_ id: String) {
        if busy[id] == .destination { busy[id] = nil }
    }

    /// Starts QEMU waiting for an incoming migration of `spec` (reserved) with the source's
    /// accelerator and guest RAM. On failure the caller discards the migration (`abortIncoming`).
    ///
    /// Under a lease (leases on, every disk shared) a keeper at `epoch` (the source's + 1)
    /// first acquires this host's lease as `incoming`, refusing under a claim above `epoch`, and
    /// QEMU is its child (watched by it, killed with it); `promoteIncoming` makes it `held` at the commit.
    public func beginIncoming(_ spec: VMSpec, epoch: Int64, accelerator: AcceleratorVerdict, memoryKiB: Int) async throws -> VMProcess {
        try await startLeaseKeeper(spec, epoch: epoch, incoming: true)
        var options = launchOptions(for: spec)
        options.accelerator = accelerator
        options.memoryKiB = memoryKiB
        let process = try await launchControlled(spec, mode: .incoming, options: options)
        processes[spec.id] = process
        return process
    }

    /// The incoming migration of `id` commits: its lease keeper, if it has one, writes `held`
    /// from now on; returns once such a write completed (then the spec file beside the lease is
    /// written at `epoch`, as after any acquisition). Nothing when the VM runs under no lease.
    ///
    /// - Throws: `ControlError.failed` when the keeper is gone or has not written `held` within
    ///   the fence time (the guest must then not resume here: the source takes it back).
    public func promoteIncoming(_ id: String, epoch: Int64) async throws {
        guard let keeping = leaseKeeping else { return }
        let runtime = directory(for: id).path
        guard let pid = Self.leaseKeeperPid(id, runtime: runtime) else {
            // No keeper: the VM is not on shared storage (none was started), or its keeper died
            // (and its QEMU with it: the resume fails on its own).
            guard let spec = processes[id]?.record.spec, (try? LeaseFiles.directory(for: spec)) != nil else { return } // not eligible: no lease
            throw ControlError.failed("the lease keeper of the incoming VM is gone (\(LeaseKeeper.state(runtimeDirectory: runtime) ?? "no report"))")
        }
        kill(pid, SIGUSR1)
        let deadline = ContinuousClock.now + keeping.settings.fenceAfter
        while ContinuousClock.now < deadline {
            let state = LeaseKeeper.state(runtimeDirectory: runtime) ?? ""
            if state == "held" {
                if let spec = processes[id]?.record.spec, let directory = try? LeaseFiles.directory(for: spec) { // eligible: it has a keeper
                    writeSpecFile(spec, epoch: epoch, in: directory, keeping: keeping)
                }
                return
            }
            if state != "incoming" { throw ControlError.failed("the lease keeper of the incoming VM did not take the lease: \(state)") }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw ControlError.failed("the lease keeper of the incoming VM did not write its lease as held within \(keeping.settings.fenceAfter)")
    }

    /// Discards an incoming VM that did not arrive: its QEMU, runtime directory and ports. The
    /// reservation ends last, so a retry cannot start in what is being torn down.
    public func abortIncoming(_ spec: VMSpec) async {
        defer { if busy[spec.id] == .destination { busy[spec.id] = nil } }
        // Its keeper, if one was started, writes `released` and exits with the copy.
        let process = processes.removeValue(forKey: spec.id)
        await stopLeaseKeeper(spec.id) {
            process?.kill()
            await process?.stop(quitGrace: .milliseconds(200))
        }
        await process?.qmp.close()
        await network?.detach(spec)
        // Best effort: QEMU was killed; a directory left behind is discarded as an orphan at the next recovery.
        try? FileManager.default.removeItem(atPath: directory(for: spec.id).path)
    }

    /// Pauses VM `id` because another host owns it at a higher epoch (its row is already held).
    /// A VM in the middle of a migration or of recovery is left to it: that protocol settles the
    /// owner with the peer and, if it takes the VM back, does so above any epoch the peer held.
    /// A start, `vm pause` or `vm resume` under way reads the hold again at its end and pauses a
    /// held copy itself.
    func fence(_ id: String) async {
        guard busy[id] == nil else {
            logger.warning("fence deferred to the operation under way on the VM (it settles or pauses a fenced copy itself)", metadata: ["vm.id": "\(id)", "vm.operation": "\(busy[id]!.rawValue)"])
            return
        }
        busy[id] = .stopping
        defer { busy[id] = nil }
        if let process = processes[id] { _ = await pauseFenced(id, process) } // killed when it would not pause: either way it does not run
    }

    /// Pauses the QEMU of a fenced copy; if it will not pause, kills it: a stale copy that runs on
    /// would be a second running VM. Returns whether it is paused (false: killed).
    func pauseFenced(_ id: String, _ process: VMProcess) async -> Bool {
        do {
            try await process.qmp.stop()
            return true
        } catch {
            logger.error("cannot pause a fenced VM copy: killing its QEMU so that it cannot run beside the owner's",
                         metadata: ["vm.id": "\(id)", "vm.pid": "\(process.pid)", "error": "\(error)"])
            process.kill()
            await process.stop(quitGrace: .milliseconds(200))
            await process.qmp.close()
            if processes[id] === process { processes[id] = nil }
            problems[id] = "fenced, and killed because QEMU would not pause: \(error)"
            return false
        }
    }

    /// Recovery is about to finish or roll back migrations of these VMs: nothing else may touch
    /// them until it has (`endRecovering`). Called before the agent serves anyone.
    public func beginRecovering(_ ids: Set<String>) {
        for id in ids where busy[id] == nil { busy[id] = .recovering }
    }

    /// Recovery is done with VM `id`; if its handover is still in doubt, it stays marked so.
    public func endRecovering(_ id: String, inDoubt: Bool) {
        if busy[id] == .recovering { busy[id] = inDoubt ? .inDoubt : nil }
    }

    /// VM `id`'s in-doubt handover was settled (by its peer's answer or an operator).
    public func settled(_ id: String) {
        if busy[id] == .inDoubt || busy[id] == .recovering { busy[id] = nil }
    }
}

extension MigrationRecord {
    init(_ stored: StoredMigration) {
        self.init(id: stored.id, vm: stored.vmName, role: stored.role, peer: stored.peer, phase: stored.phase,
                  startedAt: stored.startedAt, endedAt: stored.endedAt,
                  // For display: a report that does not decode is shown as none; the phase and error still show.
                  report: stored.result.flatMap { try? JSONDecoder().decode(MigrationReport.self, from: Data($0.utf8)) },
                  error: stored.error)
    }
}
