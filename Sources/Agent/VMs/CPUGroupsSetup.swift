import Hypervisor
import Logging

extension Agent {
    /// The cgroup cpu controller for VMs' CPU limits and shares (Protocol.md §12.9), or why there
    /// is none: then VMs without limits run as before and a VM with a limit is refused, naming it.
    /// The agent's directory is named after its host id and its state directory, so agents of
    /// different meshes on one machine (tests, labs) never share a pool's group.
    static func cpuGroups(hostID: String, stateDirectory: String, logger: Logger) -> Result<CPUControlGroups, ResourceControlError> {
        // FNV-1a, 32 bits: a short stable tag, not a security property.
        var hash: UInt32 = 2_166_136_261
        for byte in stateDirectory.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        do {
            let groups = try CPUControlGroups.detect(agent: hostID + "-" + String(hash, radix: 16))
            logger.info("VM CPU limits and shares through cgroups", metadata: ["cgroup.version": "\(groups.version.rawValue)", "cgroup.root": "\(groups.root)"])
            return .success(groups)
        } catch {
            logger.warning("no cgroup cpu controller: VMs with a CPU limit or shares are refused here", metadata: ["error": "\(error)"])
            return .failure(error)
        }
    }
}
