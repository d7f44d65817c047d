import ControlAPI
import Hypervisor

/// What `migrate` says when a migration failed (issue 20): the migration's own verdict says where
/// the guest's complete copy is ("the guest is on: source"), but that copy may have died with the
/// failure (its QEMU was the one killed). Then the report says so: no copy runs, and whether its
/// owner restarts it (Protocol.md §9.1).
enum MigrationFailureReport {
    /// The tail the migration shell ends its message with when the source keeps the guest.
    static let onSource = "; the guest is on: source"

    /// How long a QEMU whose QMP no longer answers is given to be reaped before the report is made.
    static let exitWait: Duration = .seconds(3)

    /// The migration's own words without the tail that placed the guest on the source.
    private static func reason(_ error: ControlError) -> String { String(error.message.dropLast(onSource.count)) }

    static func honest(_ error: ControlError, vm id: String, vms: VMManager, meshDefault: VMSpec.RestartPolicy) async -> ControlError {
        guard error.message.hasSuffix(onSource) else { return error }
        var info: VMInfo
        let policy: VMSpec.RestartPolicy
        do {
            info = try await vms.info(id)
            policy = try await vms.find(id).decodedSpec().restart ?? meshDefault
            // A QEMU killed outright closes its sockets (the failure the migration saw) before the
            // kernel has made it a zombie this host can reap; on a loaded host that gap can outlast
            // the failure path. While its QMP does not answer and it is not reaped, wait for it
            // (bounded: a QEMU alive but silent leaves the migration's words as they are). Only
            // the reaping is polled: asking QMP each time could wait out its command timeout.
            if let pid = info.pid, info.qemuStatus == nil {
                let deadline = ContinuousClock.now + Self.exitWait
                while await vms.runningProcess(id) == pid, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                info = try await vms.info(id)
                // Reaped and already restarted by its owner (a starved failure path): that copy died too.
                if let now = info.pid, now != pid {
                    return ControlError.failed("\(reason(error)); its QEMU on this host died and this host restarted it from its disks (a fresh boot); `hostmesh vm list` shows it")
                }
            }
        } catch _ {
            // The VM's row is gone or does not read (or the wait was cancelled): the migration's
            // own words are all there is.
            return error
        }
        guard info.pid == nil, ["crashed", "restarting", "failed"].contains(info.state) else { return error }
        let next = policy == .onFailure
            ? "this host owns it and restarts it from its disks (restart = on-failure); `hostmesh vm list` shows it"
            : "this host owns it; it stays down until `hostmesh vm start` (restart = no)"
        return ControlError.failed("\(reason(error)); \(VMInfo.lost) (its QEMU on this host died); \(next)")
    }
}
