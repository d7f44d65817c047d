public import ControlAPI
import Hypervisor

/// `hostmesh vm pause` and `vm resume`: a running VM stops in place and goes on later, on this
/// host. Frames for it meanwhile are held by the switch (Protocol.md §8.6.1's bounds) and
/// delivered, in order, when it resumes, so its peers see a stall, not a loss.
///
/// A fence (another host owns the VM now) that comes while either runs is skipped by `fence`, as
/// for every operation that marks the VM busy: each ends by reading the VM's hold again and
/// pausing a held copy (`endMarked`).
extension VMManager {
    /// Pauses VM `reference` in place: QEMU stops its vCPUs, then its ports hold frames for it.
    /// A VM already paused is left as it is (its ports hold again, should a retry find them not).
    public func pause(_ reference: String) async throws -> VMInfo {
        try await marked(reference, .pausing, ending: "was paused", pauseMarked)
    }

    /// Resumes VM `reference`, paused by `pause`: its ports hand QEMU what they held, oldest
    /// first, and QEMU runs the guest. A held copy (fenced: another host owns the VM) is never
    /// resumed here.
    public func resume(_ reference: String) async throws -> VMInfo {
        try await marked(reference, .resuming, ending: "resumed", resumeMarked)
    }

    /// Runs `body` on VM `reference` (not held) marked busy with `operation`, then ends the mark
    /// with `endMarked` whatever `body` did: a fence skipped meanwhile is applied before the answer.
    private func marked(_ reference: String, _ operation: Operation, ending what: String,
                        _ body: (StoredVM) async throws -> VMInfo) async throws -> VMInfo {
        let vm = try await find(reference)
        try refuseHeld(vm)
        try mark(vm.id, operation, name: vm.name)
        let result: Result<VMInfo, any Error>
        do { result = .success(try await body(vm)) } catch { result = .failure(error) }
        try await endMarked(vm, what)
        return try result.get()
    }

    private func pauseMarked(_ vm: StoredVM) async throws -> VMInfo {
        let process = try await runningProcess(vm)
        let spec = try? vm.decodedSpec()  // a spec that does not decode has no ports
        let status = try await runStatus(vm, process)
        guard status == .running || status == .paused else {
            throw ControlError.conflict("\(vm.name)'s QEMU is \(status), not running: only a running VM can be paused (`hostmesh vm show \(vm.name)`)")
        }
        if status == .running {
            do { try await process.qmp.stop() } catch {
                // The answer may be lost after QEMU stopped: then it is paused, as asked.
                guard (try? await process.qmp.queryStatus())?.status == .paused else {  // unread: taken as still running
                    throw ControlError.failed("cannot pause \(vm.name): QEMU did not stop (\(error)); it may still run: `hostmesh vm show \(vm.name)`")
                }
            }
        }
        // After the stop: frames handed to QEMU's socket in between wait there (a stopped QEMU
        // does not read it) and reach the guest at `cont`.
        if let spec { await network?.pausedInPlace(spec) }
        logger.info("VM paused in place", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    private func resumeMarked(_ vm: StoredVM) async throws -> VMInfo {
        // Read again under the mark: a fence may have come meanwhile.
        try refuseHeld(try await find(vm.id))
        let process = try await runningProcess(vm)
        let spec = try? vm.decodedSpec()  // a spec that does not decode has no ports to resume
        let status = try await runStatus(vm, process)
        guard status == .paused || status == .running else {
            throw ControlError.conflict("\(vm.name)'s QEMU is \(status), not paused by `hostmesh vm pause`: `vm resume` resumes only such a VM (`hostmesh vm show \(vm.name)`)")
        }
        // Before `cont`, as a move's destination activates its port (§8.6 step 4): the held
        // frames wait in QEMU's socket and the switch's backlog (however many, §8.6.1), so the
        // guest finds them as it runs; later frames queue behind them. (Running already, as a
        // retry may find it: its ports deliver again, should they still hold.)
        if let spec { await network?.resumedInPlace(spec) }
        if status == .paused {
            do { try await process.qmp.cont() } catch {
                // The answer may be lost after QEMU ran the guest: then it runs, as asked.
                guard (try? await process.qmp.queryStatus())?.running == true else {  // unread: taken as not running
                    if let spec { await network?.pausedInPlace(spec) }  // what QEMU did not read yet is held again, in order
                    throw ControlError.failed("cannot resume \(vm.name): QEMU did not run it (\(error)): `hostmesh vm show \(vm.name)`")
                }
            }
        }
        if let spec { await network?.guestRunsAgain(spec) }
        logger.info("VM resumed in place", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// Ends a pause's or resume's mark on `vm`. A fence skipped meanwhile (its row is held now)
    /// or a row that cannot be read to tell (fail closed) pauses the copy before the mark goes,
    /// and the operation is answered with that.
    private func endMarked(_ vm: StoredVM, _ what: String) async throws {
        let held: Bool
        do { held = try await find(vm.id).hold != nil } catch {
            logger.error("cannot read the VM's record to check for a fence; pausing it", metadata: ["vm.id": "\(vm.id)", "error": "\(error)"])
            held = true
        }
        defer { busy[vm.id] = nil }
        guard held, let process = processes[vm.id] else { return }
        let paused = await pauseFenced(vm.id, process)
        throw ControlError.conflict("\(vm.name) was fenced while it \(what), or its record could not be read to tell, and is "
                                    + (paused ? "paused" : "stopped (its QEMU would not pause)") + ": `hostmesh vm show \(vm.name)`")
    }

    /// Refuses (`conflict`) VM `vm` when its QEMU is paused (an operator's `vm pause`), saying
    /// what `consequence` the operation asked for would have. Fails closed: a status that cannot
    /// be read throws, naming the VM.
    func refusePaused(_ vm: StoredVM, _ process: VMProcess, _ consequence: String) async throws {
        guard try await runStatus(vm, process) == .paused else { return }
        throw ControlError.conflict("\(vm.name) is paused (`hostmesh vm pause`), and \(consequence): `hostmesh vm resume \(vm.name)` first")
    }

    /// The VMs in an operation (a migration, a storage move, a pause, ...): DRS reports such a
    /// VM busy whatever its QEMU's state says.
    func inOperation() -> Set<String> { Set(busy.keys) }

    private func refuseHeld(_ vm: StoredVM) throws {
        if let hold = vm.hold {
            throw ControlError.conflict("\(vm.name) is held, and neither paused nor resumed by `vm pause`/`vm resume`: \(hold). "
                                        + "`hostmesh vm resolve \(vm.name)` shows the choices")
        }
    }

    private func runningProcess(_ vm: StoredVM) async throws -> VMProcess {
        guard let process = processes[vm.id], await process.exitIfEnded() == nil else {
            throw ControlError.conflict("\(vm.name) is not running here: `hostmesh vm start \(vm.name)` first")
        }
        return process
    }

    private func runStatus(_ vm: StoredVM, _ process: VMProcess) async throws -> RunState {
        do { return try await process.qmp.queryStatus().status } catch {
            throw ControlError.failed("cannot read \(vm.name)'s state from its QEMU (\(error)): `hostmesh vm show \(vm.name)`; if its QEMU is gone, `hostmesh vm start \(vm.name)`")
        }
    }
}
