import ControlAPI
import Foundation
import GRDB
import Hypervisor

/// Reservations admitted, CPU limits and shares (§10.9) and memory limits and reservations (§10.11) enforced on this host.
extension VMManager {
    /// This host's capacity for reservations: its cores, and its memory less the host's own
    /// reserve (as gossiped for placement, §10.1); nil when /proc/meminfo cannot be read.
    static func reservableCapacity() -> (cpuMilli: Int, memoryMiB: Int)? {
        HostMemory.reading().map { (ProcessInfo.processInfo.activeProcessorCount * 1000, Int($0.total >> 20) - 512) }
    }

    /// Why `spec`'s reservations do not fit beside those of the VMs running here (nil: they
    /// fit). A host whose memory cannot be read admits no reservation (fail closed).
    func reservationRefusal(_ spec: VMSpec) async throws -> String? {
        guard let wanted = spec.resources, wanted.cpu.reservation > 0 || wanted.memory.reservation > 0 else { return nil }
        guard let capacity = Self.reservableCapacity() else { return "this host cannot read /proc/meminfo, so it admits no reservation" }
        let stored = try await store.database.read { db in try StoredVM.fetchAll(db) }
        var cpu = 0, memory = 0
        for vm in stored where vm.id != spec.id && processes[vm.id] != nil {
            // A spec that does not decode cannot say what it reserves: the VM counts as reserving nothing (it cannot run either).
            guard let resources = (try? vm.decodedSpec())?.resources else { continue }
            cpu += resources.cpu.reservation
            memory += resources.memory.reservation
        }
        if cpu + wanted.cpu.reservation > capacity.cpuMilli {
            return "\(spec.name) reserves \(wanted.cpu.reservation) thousandths of a core and this host has \(max(0, capacity.cpuMilli - cpu)) unreserved "
                + "(\(capacity.cpuMilli) in all)"
        }
        if memory + wanted.memory.reservation > capacity.memoryMiB {
            return "\(spec.name) reserves \(wanted.memory.reservation) MiB and this host has \(max(0, capacity.memoryMiB - memory)) MiB unreserved "
                + "(\(capacity.memoryMiB) MiB in all)"
        }
        return nil
    }

    /// Whether `spec` needs the cpu controller here: a CPU limit or shares other than normal,
    /// its own or its pool's.
    func needsCPUControl(_ spec: VMSpec) -> Bool {
        guard let resources = spec.resources else { return false }
        if !resources.cpu.isDefault { return true }
        return resources.pool.flatMap { poolCPU[$0] }.map { !$0.isDefault } ?? false
    }

    /// Why `spec`'s CPU limits or shares cannot be enforced here (nil: they can, or it has none).
    func cpuControlRefusal(_ spec: VMSpec) -> String? {
        guard needsCPUControl(spec) else { return nil }
        switch cpuGroups {
        case .success?: return nil
        case .failure(let error)?: return "its CPU limit or shares cannot be enforced on this host: \(error)"
        case nil: return "its CPU limit or shares cannot be enforced on this host: the agent has no cgroup cpu controller configured"
        }
    }

    /// Whether `spec` needs the memory controller here: a memory limit or reservation.
    func needsMemoryControl(_ spec: VMSpec) -> Bool {
        guard let memory = spec.resources?.memory else { return false }
        return memory.limit != nil || memory.reservation > 0
    }

    /// Why `spec`'s memory limit or reservation cannot be enforced here (nil: they can, or it has none).
    func memoryControlRefusal(_ spec: VMSpec) -> String? {
        guard needsMemoryControl(spec) else { return nil }
        switch memoryGroups {
        case .success?: return nil
        case .failure(let error)?: return "its memory limit or reservation cannot be enforced on this host: \(error)"
        case nil: return "its memory limit or reservation cannot be enforced on this host: the agent has no cgroup memory controller configured"
        }
    }

    /// Why `spec` may not run here unlimited: its CPU or memory controls cannot be enforced.
    func controlRefusal(_ spec: VMSpec) -> String? { cpuControlRefusal(spec) ?? memoryControlRefusal(spec) }

    /// Starts QEMU for `spec` and, when it has CPU limits or shares or memory limits or
    /// reservations, puts it in its groups; a VM whose limits cannot be enforced does not run (its
    /// QEMU is killed), it is not left unlimited.
    func launchControlled(_ spec: VMSpec, mode: QEMUCommandLine.Mode = .boot(paused: false), options: VMProcess.Options) async throws -> VMProcess {
        if let refusal = controlRefusal(spec) { throw ControlError.unavailable("cannot run \(spec.name): \(refusal)") }
        let process = try await VMProcess.launch(spec: spec, directory: directory(for: spec.id), mode: mode, options: options, logger: logger)
        guard let resources = spec.resources else { return process }
        if case .success(let groups)? = cpuGroups {
            do {
                if let pool = resources.pool {
                    let settings = poolCPU[pool] ?? VMSpec.Allocation()
                    try groups.configurePool(pool, limitMilli: settings.limit, shares: settings.shares)
                }
                try groups.place(pid: process.pid, vm: spec.id, pool: resources.pool, limitMilli: resources.cpu.limit, shares: resources.cpu.shares)
                logger.info("VM's CPU controlled", metadata: ["vm.id": "\(spec.id)", "vm.pool": "\(resources.pool ?? "-")",
                                                             "vm.cpu_limit_milli": "\(resources.cpu.limit.map(String.init) ?? "none")",
                                                             "vm.cpu_shares": "\(resources.cpu.shares)", "cgroup.version": "\(groups.version.rawValue)"])
            } catch {
                if needsCPUControl(spec) {
                    await killUncontrolled(process)
                    throw ControlError.unavailable("cannot run \(spec.name) within its CPU limit or shares: \(error)")
                }
                logger.warning("cannot put the VM's QEMU in its cgroup; it has no limit to enforce, so it runs", metadata: ["vm.id": "\(spec.id)", "error": "\(error)"])
            }
        }
        if needsMemoryControl(spec), case .success(let groups)? = memoryGroups {
            do {
                try groups.place(pid: process.pid, vm: spec.id, memoryMiB: spec.memoryMiB, limitMiB: resources.memory.limit,
                                 reservationMiB: resources.memory.reservation)
            } catch {
                await killUncontrolled(process)
                throw ControlError.unavailable("cannot run \(spec.name) within its memory limit or reservation: \(error)")
            }
            logger.info("VM's memory controlled", metadata: ["vm.id": "\(spec.id)", "vm.memory_limit_mib": "\(resources.memory.limit.map(String.init) ?? "none")",
                                                            "vm.memory_reservation_mib": "\(resources.memory.reservation)", "cgroup.version": "\(groups.version.rawValue)"])
        }
        return process
    }

    /// Kills a QEMU that may not run (its controls could not be set).
    private func killUncontrolled(_ process: VMProcess) async {
        process.kill()
        await process.stop(quitGrace: .milliseconds(200))
        await process.qmp.close()
    }

    /// Uses `groups` (or remembers why there are none) for the VMs started from now on.
    func use(cpuGroups groups: Result<CPUControlGroups, ResourceControlError>) {
        cpuGroups = groups
    }

    /// The pools' CPU settings, from the replicated records: applied at once to the pools'
    /// groups on this host, and to VMs started later.
    func usePools(_ pools: [String: VMSpec.Allocation]) {
        guard pools != poolCPU else { return }
        poolCPU = pools
        guard case .success(let groups)? = cpuGroups else { return }
        for (name, cpu) in pools.sorted(by: { $0.key < $1.key }) where FileManager.default.fileExists(atPath: groups.directory(pool: name)) {
            do { try groups.configurePool(name, limitMilli: cpu.limit, shares: cpu.shares) } catch {
                logger.error("cannot apply a pool's CPU limit or shares on this host; its VMs here keep the previous ones", metadata: [
                    "vm.pool": "\(name)", "error": "\(error)"])
            }
        }
    }

    /// Checks a new VM's resources against the mesh (`resourceCheck`, installed by DRS).
    func checkResources(_ spec: VMSpec) async throws {
        guard spec.resources != nil, let resourceCheck else { return }
        try await resourceCheck(spec)
    }

    /// Installs the mesh-wide check of new VMs' pools and reservations.
    func use(resourceCheck: @escaping @Sendable (VMSpec) async throws -> Void) {
        self.resourceCheck = resourceCheck
    }

    /// The resource settings of this host's VMs, by id (for DRS load reports).
    func resourceSettings() async throws -> [String: VMSpec.Resources] {
        let stored = try await store.database.read { db in try StoredVM.fetchAll(db) }
        var out: [String: VMSpec.Resources] = [:]
        // A spec that does not decode reports no resources (it cannot run either).
        for vm in stored { if let resources = (try? vm.decodedSpec())?.resources { out[vm.id] = resources } }
        return out
    }

    /// Drops a VM's cgroups after its QEMU ended.
    func releaseControlGroups(_ spec: VMSpec?) {
        guard let spec, let resources = spec.resources else { return }
        if case .success(let groups)? = cpuGroups { groups.remove(vm: spec.id, pool: resources.pool) }
        if case .success(let groups)? = memoryGroups { groups.remove(vm: spec.id) }
    }

    /// Uses `groups` (or remembers why there are none) for the memory of VMs started from now on.
    func use(memoryGroups groups: Result<MemoryControlGroups, ResourceControlError>) {
        memoryGroups = groups
    }
}
