public import ControlAPI
import Hypervisor

/// `hostmesh vm pause` and `vm resume`: a running VM stops in place and goes on later, on this
/// host. Frames for it meanwhile are held by the switch (Protocol.md §8.6.1's bounds) and
/// delivered, in order, when it resumes, so its peers see a stall, not a loss.
///
/// A fence (another host owns the VM now) that comes while either runs is deferred to it, as to
/// every operation that marks the VM busy (`fence`): each exit below pauses a held copy.
extension VMManager {
    /// Pauses VM `reference` in place: QEMU stops its vCPUs, then its ports hold frames for it.
    /// A VM already paused is left as it is.
    public func pause(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        try refuseHeld(vm)
        try mark(vm.id, .pausing, name: vm.name)
        defer { busy[vm.id] = nil }
        let process = try await runningProcess(vm)
        let status = try await runStatus(vm, process)
        if status == .paused { return try await info(vm.id) }
        guard status == .running else {
            throw ControlError.conflict("\(vm.name)'s QEMU is \(status), not running: only a running VM can be paused (`hostmesh vm show \(vm.name)`)")
        }
        do { try await process.qmp.stop() } catch {
            // It may run on: a fence deferred to this pause must not be lost with it.
            if await fencedMeanwhile(vm.id) { _ = await pauseFenced(vm.id, process) }
            throw ControlError.failed("cannot pause \(vm.name): QEMU did not stop (\(error)); it may still run: `hostmesh vm show \(vm.name)`")
        }
        // After the stop: frames handed to QEMU's socket in between wait there (a stopped QEMU
        // does not read it) and reach the guest at `cont`.
        if let spec = try? vm.decodedSpec() { await network?.pausedInPlace(spec) }  // a spec that does not decode has no ports
        logger.info("VM paused in place", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// Resumes VM `reference`, paused by `pause`: its ports hand QEMU what they held, oldest
    /// first, and QEMU runs the guest. A held copy (fenced: another host owns the VM) is never
    /// resumed here.
    public func resume(_ reference: String) async throws -> VMInfo {
        let vm = try await find(reference)
        try refuseHeld(vm)
        try mark(vm.id, .resuming, name: vm.name)
        defer { busy[vm.id] = nil }
        // Read again under the mark: a fence may have come meanwhile.
        try refuseHeld(try await find(vm.id))
        let process = try await runningProcess(vm)
        let status = try await runStatus(vm, process)
        if status == .running { return try await info(vm.id) }
        guard status == .paused else {
            throw ControlError.conflict("\(vm.name)'s QEMU is \(status), not paused by `hostmesh vm pause`: `vm resume` resumes only such a VM (`hostmesh vm show \(vm.name)`)")
        }
        let spec = try? vm.decodedSpec()  // a spec that does not decode has no ports to resume
        // Before `cont`, as a move's destination activates its port (§8.6 step 4): the held
        // frames wait in QEMU's socket and the switch's backlog (however many, §8.6.1), so the
        // guest finds them as it runs; later frames queue behind them.
        if let spec { await network?.resumedInPlace(spec) }
        var failure: (any Error)?
        do { try await process.qmp.cont() } catch { failure = error }
        // Whatever `cont` answered, the guest may run now (an answer lost after QEMU acted): a
        // copy fenced meanwhile, or whose row cannot be read to tell, is paused again.
        if await fencedMeanwhile(vm.id) {
            let paused = await pauseFenced(vm.id, process)
            throw ControlError.conflict("\(vm.name) was fenced, or its record could not be read, while it resumed, and is "
                                        + (paused ? "paused" : "stopped (its QEMU would not pause)") + ": `hostmesh vm show \(vm.name)`")
        }
        if let failure, (try? await process.qmp.queryStatus())?.running != true {  // unread: taken as not running
            if let spec { await network?.pausedInPlace(spec) }  // what it did not read yet is held again, in order
            throw ControlError.failed("cannot resume \(vm.name): QEMU did not run it (\(failure)): `hostmesh vm show \(vm.name)`")
        }
        if let spec { await network?.guestRunsAgain(spec) }
        logger.info("VM resumed in place", metadata: ["vm.id": "\(vm.id)", "vm.name": "\(vm.name)"])
        return try await info(vm.id)
    }

    /// True when VM `vm`'s QEMU says it is paused. Fails closed: a status that cannot be read
    /// throws, naming the VM.
    func isPaused(_ vm: StoredVM, _ process: VMProcess) async throws -> Bool {
        try await runStatus(vm, process) == .paused
    }

    /// True when VM `id` is held now (a fence came during this operation), or when its row
    /// cannot be read to tell: fail closed.
    private func fencedMeanwhile(_ id: String) async -> Bool {
        do { return try await find(id).hold != nil } catch {
            logger.error("cannot read the VM's record to check for a fence; pausing it", metadata: ["vm.id": "\(id)", "error": "\(error)"])
            return true
        }
    }

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
