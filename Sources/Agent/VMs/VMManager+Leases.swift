import ControlAPI
import Foundation
import HA
import Hypervisor

/// How this host runs lease keepers (Protocol.md §9.2).
struct LeaseKeeping: Sendable {
    /// The `hostmesh` executable (its `lease-keeper` subcommand).
    let executable: String
    let hostID: String
    let settings: LeaseSettings
    /// The mesh's restart policy for VMs whose spec says none: what the spec file on the storage
    /// says (a taker restarts only `on-failure` VMs).
    var restartDefault: VMSpec.RestartPolicy = .no
}

/// Lease keepers (Protocol.md §9.2): a VM on shared storage gets its keeper before its QEMU
/// starts, and its QEMU starts only once the keeper holds the lease; a deliberate stop releases
/// it. The keeper is found again by its pid file (it outlives the agent).
extension VMManager {
    /// Starts the lease keeper of `spec` at `epoch` and waits until it holds the lease; nothing
    /// (and no error) when leases are off or the VM is not on shared storage.
    ///
    /// - Throws: `ControlError.conflict` when the keeper refuses (a claim above `epoch`: another
    ///   host took the VM over; or the lease cannot be written), `.failed` when it cannot start.
    ///
    /// With `spawnsQEMU` (every start of a QEMU under a lease) the keeper starts the QEMU itself,
    /// as its child that is killed when the keeper dies, once `launchOptions` asks it to: no QEMU
    /// runs on without its keeper (Protocol.md §9.2). Without it (a copy already running) the
    /// keeper watches the QEMU by its pid file.
    ///
    /// With `incoming` (a migration's destination) the lease says `incoming` until
    /// `promoteIncoming`, and the spec file is written only then.
    func startLeaseKeeper(_ spec: VMSpec, epoch: Int64, spawnsQEMU: Bool = true, incoming: Bool = false) async throws {
        guard let keeping = leaseKeeping, let leaseDirectory = try? LeaseFiles.directory(for: spec) else { return } // not eligible: no lease
        let runtime = directory(for: spec.id)
        try runtime.prepare()
        await stopLeaseKeeper(spec.id) // a keeper of an earlier life must not report for this one
        for stale in [LeaseKeeper.stateFile(runtimeDirectory: runtime.path), LeaseKeeper.commandFile(runtimeDirectory: runtime.path),
                      LeaseKeeper.qemuPidFile(runtimeDirectory: runtime.path), LeaseKeeper.qemuExitFile(runtimeDirectory: runtime.path),
                      LeaseKeeper.renewalsFile(runtimeDirectory: runtime.path)] {
            unlink(stale)
        }
        let settings = keeping.settings
        func ms(_ d: Duration) -> String { String(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }
        let arguments = ["lease-keeper", "--lease-directory", leaseDirectory, "--vm", spec.id, "--host", keeping.hostID, "--epoch", "\(epoch)",
                         "--runtime-directory", runtime.path, "--renew-ms", ms(settings.renewInterval), "--fence-ms", ms(settings.fenceAfter),
                         "--tick-ms", ms(settings.tickInterval), "--kill-ms", ms(settings.killBound), "--expiry-ms", ms(settings.expiry)]
            + (spawnsQEMU ? ["--spawns-qemu"] : []) + (incoming ? ["--incoming"] : [])
        let log = runtime.path + "/lease-keeper.log"
        let keeper: pid_t
        // posix_spawn, as QEMU is, never Foundation's Process (it takes over SIGCHLD and reaps QEMUs).
        do { keeper = try DetachedProcess.spawn(executable: keeping.executable, arguments: arguments, output: log) } catch {
            throw ControlError.failed("cannot start the lease keeper of \(spec.name) (\(keeping.executable) lease-keeper): \(error)")
        }
        keeperChildren[spec.id] = keeper
        for _ in 0..<500 {
            let state = LeaseKeeper.state(runtimeDirectory: runtime.path) ?? ""
            if state == "held" {
                writeSpecFile(spec, epoch: epoch, in: leaseDirectory, keeping: keeping)
                return
            }
            if incoming, state == "incoming" { return }
            if state.hasPrefix("refused: ") {
                throw ControlError.conflict("\(spec.name) may not start here: its lease on the shared storage is refused: \(state.dropFirst("refused: ".count))")
            }
            if DetachedProcess.reap(keeper) != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if DetachedProcess.reap(keeper) == nil { kill(keeper, SIGKILL) }
        throw ControlError.failed("the lease keeper of \(spec.name) did not acquire its lease (\(LeaseKeeper.state(runtimeDirectory: runtime.path) ?? "no report"); see \(log))")
    }

    /// Writes `spec`'s spec file beside its lease (Protocol.md §9.2, "Spec file"), so that
    /// another host can start the VM if this one dies, with its restart policy resolved. A failed
    /// write is logged, not thrown: the copy here runs safely under its lease either way, and
    /// another host only fails to take it over (it refuses an absent or damaged file).
    func writeSpecFile(_ spec: VMSpec, epoch: Int64, in directory: String, keeping: LeaseKeeping) {
        var resolved = spec
        resolved.restart = spec.restart ?? keeping.restartDefault
        do { try LeaseFiles(directory: directory).writeSpec(VMSpecFile(spec: resolved, owner: keeping.hostID, epoch: epoch)) } catch {
            logger.error("cannot write the VM's spec file beside its lease: no other host can take it over", metadata: [
                "vm.id": "\(spec.id)", "vm.epoch": "\(epoch)", "error": "\(error)"])
        }
    }

    /// How to launch `spec`'s QEMU: through its lease keeper when one started for it with
    /// `spawnsQEMU` (the VM is on shared storage and leases are on), else as this agent's child.
    func launchOptions(for spec: VMSpec) -> VMProcess.Options {
        var options = options
        guard leaseKeeping != nil, (try? LeaseFiles.directory(for: spec)) != nil else { return options } // not eligible: no keeper
        let runtime = directory(for: spec.id).path
        options.spawner = { executable, arguments, output in
            try await Self.spawnThroughKeeper(QEMUCommand(executable: executable, arguments: arguments, output: output), runtime: runtime)
        }
        return options
    }

    /// Asks the keeper in `runtime` to start QEMU (`LeaseKeeper.commandFile`) and waits for the
    /// pid of the QEMU it started (at most 10 s).
    ///
    /// - Throws: `ControlError.failed` when the keeper ended, fenced or did not answer.
    static func spawnThroughKeeper(_ command: QEMUCommand, runtime: String) async throws -> pid_t {
        let path = LeaseKeeper.commandFile(runtimeDirectory: runtime)
        try JSONEncoder().encode(command).write(to: URL(fileURLWithPath: path), options: .atomic)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            // Absent or half-written: the keeper has not started QEMU yet.
            if let text = try? String(contentsOfFile: LeaseKeeper.qemuPidFile(runtimeDirectory: runtime), encoding: .utf8),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 {
                return pid
            }
            let state = LeaseKeeper.state(runtimeDirectory: runtime) ?? "no report"
            if state != "held" && state != "incoming" && state != "acquiring" { throw ControlError.failed("the lease keeper did not start QEMU: \(state)") }
            try await Task.sleep(for: .milliseconds(10))
        }
        unlink(path)
        throw ControlError.failed("the lease keeper did not start QEMU within 10 s (\(LeaseKeeper.state(runtimeDirectory: runtime) ?? "no report"))")
    }

    /// Tells `id`'s lease keeper, if one runs, that the VM stops on purpose (SIGTERM: it writes
    /// `released`, waits for a QEMU of its own to quit, and exits), and waits for it briefly.
    /// `quitting` makes the QEMU quit meanwhile (a keeper's QEMU dies with it: a stop should be
    /// a quit, not a kill).
    func stopLeaseKeeper(_ id: String, quitting: (() async -> Void)? = nil) async {
        let runtime = directory(for: id).path
        guard let pid = Self.leaseKeeperPid(id, runtime: runtime) else {
            await quitting?()
            return
        }
        kill(pid, SIGTERM)
        await quitting?()
        for _ in 0..<600 where Self.leaseKeeperPid(id, runtime: runtime) != nil {
            reapLeaseKeepers()
            // Cancelled: the keeper exits by itself anyway; nothing waits on the release.
            try? await Task.sleep(for: .milliseconds(20))
        }
        reapLeaseKeepers()
    }

    /// Reaps the lease keepers this agent started that have exited (they are its children).
    func reapLeaseKeepers() {
        for (id, pid) in keeperChildren where DetachedProcess.reap(pid) != nil { keeperChildren[id] = nil }
    }

    /// How the QEMU `id`'s keeper started ended, when this agent cannot know (not its child):
    /// the keeper's report; nil while that keeper still runs without having reported (the next
    /// round asks again). `.unknown` when the keeper is gone without a report (killed with it).
    func keeperReportedExit(_ id: String) -> VMExit.Status? {
        let runtime = directory(for: id).path
        if let status = LeaseKeeper.qemuExit(runtimeDirectory: runtime) { return status }
        return Self.leaseKeeperPid(id, runtime: runtime) == nil ? .unknown : nil
    }

    /// The pid of `id`'s running lease keeper: the pid file's process, if its command line is
    /// that VM's keeper (a reused pid is not).
    static func leaseKeeperPid(_ id: String, runtime: String) -> Int32? {
        // No pid file, or an unreadable one: no keeper to find.
        guard let text = try? String(contentsOfFile: LeaseKeeper.pidFile(runtimeDirectory: runtime), encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
              let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard argv.contains("lease-keeper"), argv.contains(id),
              // A zombie (exited, not yet reaped) holds no lease.
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), // gone meanwhile: none
              let close = stat.lastIndex(of: ")"), !stat[close...].hasPrefix(") Z") else { return nil }
        return pid
    }

    /// The copies running here under a lease keeper (on shared storage, leases on), by VM id
    /// with name and runtime directory; nil when leases are off.
    func leasedCopies() -> [(id: String, name: String, runtime: String)]? {
        guard leaseKeeping != nil else { return nil }
        return processes.keys.sorted().compactMap { id -> (id: String, name: String, runtime: String)? in
            guard let spec = processes[id]?.record.spec,
                  (try? LeaseFiles.directory(for: spec)) != nil else { return nil } // not on shared storage: no keeper
            return (id, spec.name, directory(for: id).path)
        }
    }

    /// What the keeper of `id` last said, when it fenced the copy (`fenced: …`).
    nonisolated func fencedByLease(_ id: String) -> String? {
        guard let state = LeaseKeeper.state(runtimeDirectory: directory(for: id).path), state.hasPrefix("fenced: ") else { return nil }
        return state
    }

    /// Guards again every copy on shared storage that runs without its lease keeper while leases
    /// are on (its keeper was killed, or the agent started with leases newly on): its lease is no
    /// longer renewed, so once it expired another host could start the VM beside it. A new keeper
    /// at the VM's epoch acquires the lease for the running copy (refusing under a higher claim);
    /// when it cannot, the copy is killed (SIGKILL). Returns the VMs killed; the restart
    /// supervisor then sees their exits like any other.
    func guardUnguardedCopies() async -> [String] {
        guard leaseKeeping != nil else { return [] }
        reapLeaseKeepers()
        var killed: [String] = []
        for (id, process) in processes where busy[id] == nil {
            guard (try? LeaseFiles.directory(for: process.record.spec)) != nil, // not on shared storage: no lease to lose
                  await process.exitIfEnded() == nil, busy[id] == nil, processes[id] === process,
                  Self.leaseKeeperPid(id, runtime: directory(for: id).path) == nil,
                  fencedByLease(id) == nil else { continue } // a keeper that fenced has killed the copy itself
            busy[id] = .starting
            defer { if busy[id] == .starting { busy[id] = nil } }
            let before = LeaseKeeper.state(runtimeDirectory: directory(for: id).path) ?? "no report"
            do {
                let vm = try await find(id)
                try await startLeaseKeeper(process.record.spec, epoch: vm.epoch, spawnsQEMU: false)
                logger.warning("a VM on shared storage ran without its lease keeper: a new keeper holds its lease",
                               metadata: ["vm.id": "\(id)", "vm.epoch": "\(vm.epoch)", "vm.keeper": "\(before)"])
            } catch {
                logger.error("a VM on shared storage runs without its lease keeper and none can hold its lease: killed",
                             metadata: ["vm.id": "\(id)", "error": "\(error)"])
                process.kill()
                killed.append(id)
            }
        }
        return killed
    }
}
