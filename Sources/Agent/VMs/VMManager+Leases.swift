import ControlAPI
import Foundation
import HA
import Hypervisor

/// How this host runs lease keepers (Protocol.md §11.2).
struct LeaseKeeping: Sendable {
    /// The `hostmesh` executable (its `lease-keeper` subcommand).
    let executable: String
    let hostID: String
    let settings: LeaseSettings
    /// The mesh's restart policy for VMs whose spec says none: what the spec file on the storage
    /// says (a taker restarts only `on-failure` VMs).
    var restartDefault: VMSpec.RestartPolicy = .no
}

/// Lease keepers (Protocol.md §11.2): a VM on shared storage gets its keeper before its QEMU
/// starts, and its QEMU starts only once the keeper holds the lease; a deliberate stop releases
/// it. The keeper is found again by its pid file (it outlives the agent).
extension VMManager {
    /// Starts the lease keeper of `spec` at `epoch` and waits until it holds the lease; nothing
    /// (and no error) when leases are off or the VM is not on shared storage.
    ///
    /// - Throws: `ControlError.conflict` when the keeper refuses (a claim above `epoch`: another
    ///   host took the VM over; or the lease cannot be written), `.failed` when it cannot start.
    func startLeaseKeeper(_ spec: VMSpec, epoch: Int64) async throws {
        guard let keeping = leaseKeeping, let leaseDirectory = try? LeaseFiles.directory(for: spec) else { return } // not eligible: no lease
        let runtime = directory(for: spec.id)
        try runtime.prepare()
        await stopLeaseKeeper(spec.id) // a keeper of an earlier life must not report for this one
        unlink(LeaseKeeper.stateFile(runtimeDirectory: runtime.path))
        let settings = keeping.settings
        func ms(_ d: Duration) -> String { String(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000) }
        let keeper = Process()
        keeper.executableURL = URL(fileURLWithPath: keeping.executable)
        keeper.arguments = ["lease-keeper", "--lease-directory", leaseDirectory, "--vm", spec.id, "--host", keeping.hostID, "--epoch", "\(epoch)",
                            "--runtime-directory", runtime.path, "--renew-ms", ms(settings.renewInterval), "--fence-ms", ms(settings.fenceAfter),
                            "--tick-ms", ms(settings.tickInterval), "--kill-ms", ms(settings.killBound), "--expiry-ms", ms(settings.expiry)]
        keeper.standardInput = FileHandle.nullDevice
        keeper.standardOutput = FileHandle.nullDevice
        let log = runtime.path + "/lease-keeper.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil) // opened next; a failure shows there
        keeper.standardError = FileHandle(forWritingAtPath: log)
        do { try keeper.run() } catch {
            throw ControlError.failed("cannot start the lease keeper of \(spec.name) (\(keeping.executable) lease-keeper): \(error)")
        }
        for _ in 0..<500 {
            let state = LeaseKeeper.state(runtimeDirectory: runtime.path) ?? ""
            if state == "held" {
                writeSpecFile(spec, epoch: epoch, in: leaseDirectory, keeping: keeping)
                return
            }
            if state.hasPrefix("refused: ") {
                throw ControlError.conflict("\(spec.name) may not start here: its lease on the shared storage is refused: \(state.dropFirst("refused: ".count))")
            }
            if !keeper.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        if keeper.isRunning { kill(keeper.processIdentifier, SIGKILL) }
        throw ControlError.failed("the lease keeper of \(spec.name) did not acquire its lease (\(LeaseKeeper.state(runtimeDirectory: runtime.path) ?? "no report"); see \(log))")
    }

    /// Writes `spec`'s spec file beside its lease (Protocol.md §11.2, "Spec file"), so that
    /// another host can start the VM if this one dies, with its restart policy resolved. A failed
    /// write is logged, not thrown: the copy here runs safely under its lease either way, and
    /// another host only fails to take it over (it refuses an absent or damaged file).
    private func writeSpecFile(_ spec: VMSpec, epoch: Int64, in directory: String, keeping: LeaseKeeping) {
        var resolved = spec
        resolved.restart = spec.restart ?? keeping.restartDefault
        do { try LeaseFiles(directory: directory).writeSpec(VMSpecFile(spec: resolved, owner: keeping.hostID, epoch: epoch)) } catch {
            logger.error("cannot write the VM's spec file beside its lease: no other host can take it over", metadata: [
                "vm.id": "\(spec.id)", "vm.epoch": "\(epoch)", "error": "\(error)"])
        }
    }

    /// Tells `id`'s lease keeper, if one runs, that the VM stops on purpose (SIGTERM: it writes
    /// `released` and exits), and waits for it briefly.
    func stopLeaseKeeper(_ id: String) async {
        let runtime = directory(for: id).path
        guard let pid = Self.leaseKeeperPid(id, runtime: runtime) else { return }
        kill(pid, SIGTERM)
        for _ in 0..<150 where Self.leaseKeeperPid(id, runtime: runtime) != nil {
            // Cancelled: the keeper exits by itself anyway; nothing waits on the release.
            try? await Task.sleep(for: .milliseconds(20))
        }
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
                try await startLeaseKeeper(process.record.spec, epoch: vm.epoch)
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
