import Foundation
import GRDB
public import Hypervisor
public import Logging
import ControlAPI

/// The VMs this host owns: their specs (durable, in the store) and their QEMU processes.
///
/// After an agent restart, `recover()` re-adopts every QEMU that is still running; it never
/// kills one.
public actor VMManager {
    private let store: AgentStore
    private let stateDirectory: String
    private let logger: Logger
    private let options: VMProcess.Options
    private var processes: [String: VMProcess] = [:]
    /// VMs in the middle of a migration, by id, with their role.
    private var migrating: [String: String] = [:]
    private var problems: [String: String] = [:]
    /// The virtual switch the VMs' NICs plug into (nil: VMs get no network).
    private var network: AgentNetwork?

    /// Plugs VMs into the agent's virtual switch from now on.
    func use(network: AgentNetwork) { self.network = network }

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

    /// Re-adopts running QEMUs of VMs that should be running; notes the ones that are not.
    public func recover() async {
        let vms = (try? await store.database.read { db in try StoredVM.fetchAll(db) }) ?? []
        for vm in vms where vm.desiredState == "running" {
            do {
                let process = try await VMProcess.adopt(directory: directory(for: vm.id), options: options, logger: logger)
                processes[vm.id] = process
                if let spec = try? vm.decodedSpec() {
                    do { try await network?.attach(spec) } catch {
                        logger.warning("cannot re-create the VM's switch ports", metadata: ["vm.id": "\(vm.id)", "error": "\(error)"])
                    }
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
        let directories = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory + "/vms")) ?? []
        for id in directories where !owned.contains(id) {
            logger.warning("discarding a VM copy this host does not own", metadata: ["vm.id": "\(id)"])
            await discardOrphan(id)
        }
    }

    /// Defines a VM (stopped).
    public func create(_ spec: VMSpec) async throws -> VMInfo {
        do {
            try spec.validate()
            try await network?.validate(spec)
        } catch { throw ControlError.badRequest("\(error)") }
        let spec = AgentNetwork.localize(spec, directory: directory(for: spec.id))
        let record = try StoredVM(spec: spec, desiredState: "stopped")
        try await store.database.write { db in
            if try StoredVM.filter(Column("name") == spec.name).fetchCount(db) > 0 {
                throw ControlError.conflict("a VM named \(spec.name) already exists on this host")
            }
            if try StoredVM.exists(db, key: spec.id) { throw ControlError.conflict("VM id \(spec.id) already exists on this host") }
            try record.insert(db)
        }
        logger.info("VM defined", metadata: ["vm.id": "\(spec.id)", "vm.name": "\(spec.name)"])
        return try await info(spec.id)
    }

    /// Starts a defined VM.
    public func start(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        // A held VM may be running elsewhere: starting this copy could make two.
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        if let process = processes[vm.id], await process.exitIfEnded() == nil { return try await info(vm.id) }
        guard migrating[vm.id] == nil else { throw ControlError.conflict("\(vm.name) is migrating") }
        let spec = try vm.decodedSpec()
        try await setDesired(vm.id, "running")
        do {
            try await network?.attach(spec)
            processes[vm.id] = try await VMProcess.launch(spec: spec, directory: directory(for: vm.id), options: options, logger: logger)
            problems[vm.id] = nil
        } catch {
            try await setDesired(vm.id, "stopped")
            throw ControlError.failed("cannot start \(vm.name): \(error)")
        }
        logger.info("VM started", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// Stops a VM (QEMU quits; SIGKILL if it will not).
    public func stop(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        guard migrating[vm.id] == nil else { throw ControlError.conflict("\(vm.name) is migrating; wait for it to end") }
        try await setDesired(vm.id, "stopped")
        if let process = processes.removeValue(forKey: vm.id) {
            await process.stop()
            await process.qmp.close()
        }
        if let spec = try? vm.decodedSpec() { await network?.detach(spec) }
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
        return VMDetails(info: try await info(vm.id), spec: try vm.decodedSpec(), migrations: history.map(MigrationRecord.init))
    }

    /// The last `lines` lines of the VM's serial console.
    public func consoleLog(_ reference: String, lines: Int) async throws -> String {
        let vm = try await find(reference)
        let text = directory(for: vm.id).readConsole()
        // Console lines end in "\r\n", which Swift treats as one Character: split on any newline.
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).suffix(lines).joined(separator: "\n")
    }

    /// The running QEMU of a VM.
    public func process(_ id: String) -> VMProcess? { processes[id] }

    /// Finds a VM by name or id.
    public func find(_ reference: String) async throws -> StoredVM {
        let found = try await store.database.read { db in
            try StoredVM.fetchOne(db, key: reference) ?? StoredVM.filter(Column("name") == reference).fetchOne(db)
        }
        guard let found else { throw ControlError.notFound("no VM named or with id \(reference) on this host") }
        return found
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
                info.qemuStatus = (try? await process.qmp.queryStatus())?.status.rawValue
                info.state = info.qemuStatus == "running" ? "running" : (info.qemuStatus ?? "unknown")
            }
        } else if vm.desiredState == "running" {
            info.state = "crashed"
        }
        if let role = migrating[vm.id] { info.state = role == "source" ? "migrating" : "incoming" }
        if let hold = vm.hold {
            info.state = "in-doubt"
            info.problem = hold
        }
        info.epoch = vm.epoch
        return info
    }

    private func setDesired(_ id: String, _ state: String) async throws {
        try await store.database.write { db in
            try db.execute(sql: "UPDATE vm SET desiredState = ?, updatedAt = ? WHERE id = ?", arguments: [state, Date().timeIntervalSince1970, id])
        }
    }

    // MARK: - Migration hooks

    /// Marks a running VM as leaving; returns its spec and QEMU. Only one migration at a time per VM.
    func beginOutgoing(_ reference: String) async throws -> (VMSpec, VMProcess) {
        let vm = try await find(reference)
        guard migrating[vm.id] == nil else { throw ControlError.conflict("\(vm.name) is already migrating") }
        // Held: a handover is in doubt or a newer owner exists; moving this copy could make two.
        if let hold = vm.hold { throw ControlError.conflict("\(vm.name) is held: \(hold). `hostmesh vm resolve \(vm.name)` shows the choices") }
        // Marked before the next suspension point, so a concurrent request sees it; undone below
        // if the VM cannot go after all.
        migrating[vm.id] = "source"
        guard let process = processes[vm.id], await process.exitIfEnded() == nil else {
            migrating[vm.id] = nil
            throw ControlError.conflict("\(vm.name) is not running here; only a running VM can be live-migrated")
        }
        do { return (try vm.decodedSpec(), process) } catch {
            migrating[vm.id] = nil
            throw error
        }
    }

    /// Ends an outgoing migration. When the VM was released (its record is already gone from
    /// the store: it lives elsewhere) its QEMU quits; otherwise it stays here.
    func endOutgoing(_ id: String, released: Bool) async {
        migrating[id] = nil
        guard released else { return }
        if let process = processes.removeValue(forKey: id) {
            await process.stop(quitGrace: .seconds(2))
            await process.qmp.close()
        }
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
    }

    /// The incoming VM is this host's now (its record was journaled with the commit).
    func adoptIncoming(_ id: String) {
        migrating[id] = nil
        problems[id] = nil
    }

    /// Kills a QEMU left behind by an incoming migration that never committed (after a restart).
    func discardOrphan(_ id: String) async {
        let directory = directory(for: id)
        if let process = try? await VMProcess.adopt(directory: directory, options: options, logger: logger) {
            process.kill()
            await process.stop(quitGrace: .milliseconds(200))
            await process.qmp.close()
        } else if let pid = directory.readPid() {
            // Not adoptable (QMP gone): kill it only if it really is this VM's QEMU.
            if let argv = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), argv.contains(directory.qmpSocket) {
                kill(pid, SIGKILL)
            }
        }
        try? FileManager.default.removeItem(atPath: directory.path)
    }

    /// Starts QEMU waiting for an incoming migration of `spec` with the source's accelerator.
    func beginIncoming(_ spec: VMSpec, accelerator: AcceleratorVerdict) async throws -> VMProcess {
        let exists = try await store.database.read { db in
            try StoredVM.exists(db, key: spec.id) || StoredVM.filter(Column("name") == spec.name).fetchCount(db) > 0
        }
        guard !exists, migrating[spec.id] == nil else { throw ControlError.conflict("VM \(spec.name) (\(spec.id)) already exists on this host") }
        migrating[spec.id] = "destination"
        var options = options
        options.accelerator = accelerator
        do {
            let process = try await VMProcess.launch(spec: spec, directory: directory(for: spec.id), mode: .incoming, options: options, logger: logger)
            processes[spec.id] = process
            return process
        } catch {
            migrating[spec.id] = nil
            throw error
        }
    }


    /// Discards an incoming VM that did not arrive.
    func abortIncoming(_ id: String) async {
        migrating[id] = nil
        if let process = processes.removeValue(forKey: id) {
            process.kill()
            await process.stop(quitGrace: .milliseconds(200))
            await process.qmp.close()
        }
        try? FileManager.default.removeItem(atPath: directory(for: id).path)
    }
}

extension MigrationRecord {
    init(_ stored: StoredMigration) {
        self.init(id: stored.id, vm: stored.vmName, role: stored.role, peer: stored.peer, phase: stored.phase,
                  startedAt: stored.startedAt, endedAt: stored.endedAt,
                  report: stored.result.flatMap { try? JSONDecoder().decode(MigrationReport.self, from: Data($0.utf8)) },
                  error: stored.error)
    }
}
