import ControlAPI
import NIOConcurrencyHelpers
import Prometheus
import Telemetry

/// Each running VM's CPU time and memory, from its QEMU process (`ProcessUsage`), labelled by the
/// VM's name: `hostmesh_vm_cpu_seconds_total{vm,mode}`, `hostmesh_vm_resident_memory_bytes{vm}`,
/// `hostmesh_vm_memory_configured_bytes{vm}`. A VM no longer running here loses its gauges (its
/// CPU counter stops growing, as its switch port counters do); a VM whose QEMU changed (restarted,
/// or back after migrating away) counts its new process's CPU time from zero on top of the old.
final class VMUsageMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let mirror: CounterMirror
    /// The QEMU pid each VM had at the last scrape, by VM name.
    private let pids = NIOLockedValueBox<[String: Int32]>([:])

    init(registry: PrometheusCollectorRegistry, mirror: CounterMirror) {
        self.registry = registry
        self.mirror = mirror
    }

    /// Sets the figures of the VMs running now (`running` with their pids) and drops the gauges of those gone.
    func refresh(_ running: [VMInfo]) {
        var seen: [String: Int32] = [:]
        for vm in running {
            guard let pid = vm.pid, let usage = ProcessUsage.read(pid: pid) else { continue }
            seen[vm.name] = pid
            let labels = [("vm", vm.name)]
            if pids.withLockedValue({ $0[vm.name] }) != pid {
                for mode in ["user", "system"] { mirror.restart(AgentMetricNames.vmCPU, labels + [("mode", mode)]) }
            }
            let scale = 1 / ProcessUsage.ticksPerSecond
            mirror.set(AgentMetricNames.vmCPU, labels + [("mode", "user")], to: usage.userTicks, scale: scale, help: AgentMetricNames.vmCPUHelp)
            mirror.set(AgentMetricNames.vmCPU, labels + [("mode", "system")], to: usage.systemTicks, scale: scale, help: AgentMetricNames.vmCPUHelp)
            resident(vm.name).set(Double(usage.residentBytes))
            configured(vm.name).set(Double(vm.memoryMiB) * 1_048_576)
        }
        let gone = pids.withLockedValue { pids in
            defer { pids = seen }
            return pids.keys.filter { seen[$0] == nil }
        }
        for name in gone {
            registry.unregisterGauge(resident(name))
            registry.unregisterGauge(configured(name))
        }
    }

    private func resident(_ name: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.vmResident, unitName: "", helpText: AgentMetricNames.vmResidentHelp),
                           labels: [("vm", name)])
    }

    private func configured(_ name: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.vmConfigured, unitName: "", helpText: AgentMetricNames.vmConfiguredHelp),
                           labels: [("vm", name)])
    }
}
