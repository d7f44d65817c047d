import Foundation
import HA
import MeshTime
import NIOConcurrencyHelpers
import Prometheus

/// Each leased VM's lease renewals, from its keeper's report (`LeaseKeeper.renewalsFile`), read at
/// scrape time: `hostmesh_vm_lease_renewal_seconds{vm,figure}`, `hostmesh_vm_lease_renewed_ago_seconds{vm}`
/// and `hostmesh_vm_lease_fence_seconds{vm}`. A renewal stretch or a time since the last renewal
/// nearing the fence time is shared storage about to make the keeper kill the copy. A VM no longer
/// running here, or without a keeper's report, loses its gauges.
final class LeaseRenewalGauges: Sendable {
    let registry: PrometheusCollectorRegistry
    /// The VMs that had gauges at the last scrape.
    private let reported = NIOLockedValueBox<Set<String>>([])
    static let figures = ["last_write", "slowest_write", "longest_stretch"]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// Sets the figures of the VMs running here under a lease keeper (name, runtime directory)
    /// whose keeper reported, and drops the gauges of the others.
    func refresh(_ running: [(name: String, runtime: String)]) {
        var seen: Set<String> = []
        for vm in running {
            guard let renewals = LeaseKeeper.renewals(runtimeDirectory: vm.runtime) else { continue }
            let (report, written) = renewals
            seen.insert(vm.name)
            let values = [report.lastWrite, report.slowestWrite, report.longestStretch]
            for (figure, value) in zip(Self.figures, values) { renewal(vm.name, figure).set(value.inSeconds) }
            renewedAgo(vm.name).set(max(0, Date().timeIntervalSince(written)))
            fence(vm.name).set(report.fenceAfter.inSeconds)
        }
        let gone = reported.withLockedValue { reported in
            defer { reported = seen }
            return reported.subtracting(seen)
        }
        for name in gone {
            for figure in Self.figures { registry.unregisterGauge(renewal(name, figure)) }
            registry.unregisterGauge(renewedAgo(name))
            registry.unregisterGauge(fence(name))
        }
    }

    private func renewal(_ name: String, _ figure: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.leaseRenewal, unitName: "", helpText: AgentMetricNames.leaseRenewalHelp),
                           labels: [("vm", name), ("figure", figure)])
    }

    private func renewedAgo(_ name: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.leaseRenewedAgo, unitName: "", helpText: AgentMetricNames.leaseRenewedAgoHelp),
                           labels: [("vm", name)])
    }

    private func fence(_ name: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.leaseFence, unitName: "", helpText: AgentMetricNames.leaseFenceHelp),
                           labels: [("vm", name)])
    }
}
