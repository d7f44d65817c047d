import Hypervisor
import Logging

extension Agent {
    /// The cgroup cpu controller for VMs' CPU limits and shares (Protocol.md §10.9), or why there
    /// is none: then VMs without limits run as before and a VM with a limit is refused, naming it.
    /// The agent's directory is named after its host id and its state directory, so agents of
    /// different meshes on one machine (tests, labs) never share a pool's group.
    static func cpuGroups(hostID: String, stateDirectory: String, logger: Logger) -> Result<CPUControlGroups, ResourceControlError> {
        do {
            let groups = try CPUControlGroups.detect(agent: groupName(hostID: hostID, stateDirectory: stateDirectory))
            logger.info("VM CPU limits and shares through cgroups", metadata: ["cgroup.version": "\(groups.version.rawValue)", "cgroup.root": "\(groups.root)"])
            return .success(groups)
        } catch {
            logger.warning("no cgroup cpu controller: VMs with a CPU limit or shares are refused here", metadata: ["error": "\(error)"])
            return .failure(error)
        }
    }

    /// The cgroup memory controller for VMs' memory limits and reservations (Protocol.md §10.11),
    /// or why there is none: then a VM with a memory limit or reservation is refused, naming it.
    static func memoryGroups(hostID: String, stateDirectory: String, logger: Logger) -> Result<MemoryControlGroups, ResourceControlError> {
        do {
            let groups = try MemoryControlGroups.detect(agent: groupName(hostID: hostID, stateDirectory: stateDirectory))
            logger.info("VM memory limits and reservations through cgroups", metadata: ["cgroup.version": "\(groups.version.rawValue)", "cgroup.root": "\(groups.root)"])
            return .success(groups)
        } catch {
            logger.warning("no cgroup memory controller: VMs with a memory limit or reservation are refused here", metadata: ["error": "\(error)"])
            return .failure(error)
        }
    }

    /// The agent's group directory name: its host id and a tag of its state directory.
    private static func groupName(hostID: String, stateDirectory: String) -> String {
        // FNV-1a, 32 bits: a short stable tag, not a security property.
        var hash: UInt32 = 2_166_136_261
        for byte in stateDirectory.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return hostID + "-" + String(hash, radix: 16)
    }
}
