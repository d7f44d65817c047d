import GossipTransport
import Membership
import MigrationService
import NIOConcurrencyHelpers
import Prometheus
import Telemetry
import VirtualSwitch

/// The figures read at scrape time: members by state, gossip traffic and drops, VMs by state,
/// migrations in flight and queued, the switch's and each VM port's counters, each VM's CPU and
/// memory, DRS and maintenance. Events (migrations
/// ended, handshakes, journal writes) are counted where they happen, through swift-metrics.
struct AgentMetricsCollector: Sendable {
    let registry: PrometheusCollectorRegistry
    let mirror: CounterMirror
    let membership: AgentMembership
    let vms: VMManager
    let coordinator: MigrationCoordinator
    let network: AgentNetwork
    /// Each running VM's CPU and memory.
    let usage: VMUsageMetrics
    /// Each leased VM's lease renewals.
    let leases: LeaseRenewalGauges
    /// DRS and maintenance (nil: not read).
    let drs: DRSGauges?
    /// VM states seen so far: a state no VM is in any more is reported 0, not left at its last count.
    private let vmStatesSeen = NIOLockedValueBox<Set<String>>(["running", "stopped", "crashed", "restarting", "failed"])

    init(registry: PrometheusCollectorRegistry, membership: AgentMembership, vms: VMManager, coordinator: MigrationCoordinator, network: AgentNetwork,
         drs: DRSController?) {
        let mirror = CounterMirror(registry: registry)
        self.registry = registry
        self.mirror = mirror
        self.membership = membership
        self.vms = vms
        self.coordinator = coordinator
        self.network = network
        usage = VMUsageMetrics(registry: registry, mirror: mirror)
        leases = LeaseRenewalGauges(registry: registry)
        self.drs = drs.map { DRSGauges(registry: registry, mirror: mirror, controller: $0) }
    }

    /// Sets every scrape-time figure.
    func refresh() async {
        await refreshMembership()
        await refreshMigrations()
        await refreshVMs()
        await refreshSwitch()
        await drs?.refresh()
    }

    private func refreshMembership() async {
        let members = await membership.service.members()
        for status in MemberStatus.allCases {
            registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.members, unitName: "", helpText: AgentMetricNames.membersHelp), labels: [("state", status.rawValue)])
                .set(Double(members.filter { $0.status == status }.count))
        }
        let counters = await membership.service.counters()
        mirror.set(AgentMetricNames.gossipDatagrams, [("direction", "in")], to: counters.datagramsIn, help: AgentMetricNames.gossipDatagramsHelp)
        mirror.set(AgentMetricNames.gossipDatagrams, [("direction", "out")], to: counters.datagramsOut, help: AgentMetricNames.gossipDatagramsHelp)
        mirror.set(AgentMetricNames.gossipBytes, [("direction", "in")], to: counters.bytesIn, help: AgentMetricNames.gossipBytesHelp)
        mirror.set(AgentMetricNames.gossipBytes, [("direction", "out")], to: counters.bytesOut, help: AgentMetricNames.gossipBytesHelp)
        for reason in GossipDropReason.allCases {
            mirror.set(AgentMetricNames.gossipDrops, [("reason", reason.rawValue)], to: counters.dropped(reason), help: AgentMetricNames.gossipDropsHelp)
        }
        mirror.set(AgentMetricNames.gossipSendFailures, to: counters.sendFailures, help: AgentMetricNames.gossipSendFailuresHelp)
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.localHealth, unitName: "", helpText: AgentMetricNames.localHealthHelp)).set(Double(counters.localHealthScore))
    }

    private func refreshMigrations() async {
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.migrationsInFlight, unitName: "", helpText: AgentMetricNames.migrationsInFlightHelp)).set(Double(await coordinator.inFlight))
        registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.migrationsQueued, unitName: "", helpText: AgentMetricNames.migrationsQueuedHelp)).set(Double(await coordinator.queuedCount))
    }

    private func refreshVMs() async {
        // A list that cannot be read leaves the last figures: a scrape reports what it knows.
        guard let list = try? await vms.list() else { return }
        let states = vmStatesSeen.withLockedValue { seen in
            seen.formUnion(list.map(\.state))
            return seen
        }
        for state in states {
            registry.makeGauge(descriptor: .init(metricName: AgentMetricNames.vms, unitName: "", helpText: AgentMetricNames.vmsHelp), labels: [("state", state)])
                .set(Double(list.filter { $0.state == state }.count))
        }
        usage.refresh(list.filter { $0.state == "running" })
        leases.refresh(await vms.leasedCopies()?.map { ($0.name, $0.runtime) } ?? [])
        for vm in list where vm.state == "running" {
            // A VM whose spec cannot be read (deleted meanwhile) has no ports to count.
            guard let spec = try? await vms.find(vm.id).decodedSpec() else { continue }
            for nic in spec.nics {
                guard let counters = await network.virtualSwitch.counters(of: AgentNetwork.portID(spec, nic)) else { continue }
                let labels = [("vm", vm.name), ("nic", nic.id)]
                mirror.set(AgentMetricNames.portFrames, labels + [("direction", "from_vm")], to: counters.rxFrames, help: AgentMetricNames.portFramesHelp)
                mirror.set(AgentMetricNames.portFrames, labels + [("direction", "to_vm")], to: counters.txFrames, help: AgentMetricNames.portFramesHelp)
                mirror.set(AgentMetricNames.portBytes, labels + [("direction", "from_vm")], to: counters.rxBytes, help: AgentMetricNames.portBytesHelp)
                mirror.set(AgentMetricNames.portBytes, labels + [("direction", "to_vm")], to: counters.txBytes, help: AgentMetricNames.portBytesHelp)
                mirror.set(AgentMetricNames.portDrops, labels, to: counters.totalDrops, help: AgentMetricNames.portDropsHelp)
            }
        }
    }

    private func refreshSwitch() async {
        let (switchCounters, _) = await network.virtualSwitch.counters()
        mirror.set(AgentMetricNames.overlayFrames, [("direction", "in")], to: switchCounters.overlayFramesIn, help: AgentMetricNames.overlayFramesHelp)
        mirror.set(AgentMetricNames.overlayFrames, [("direction", "out")], to: switchCounters.overlayFramesOut, help: AgentMetricNames.overlayFramesHelp)
        mirror.set(AgentMetricNames.stragglers, to: switchCounters.stragglersForwarded, help: AgentMetricNames.stragglersHelp)
        mirror.set(AgentMetricNames.gatewayRelayed, to: switchCounters.gatewayRelayed, help: AgentMetricNames.gatewayRelayedHelp)
        mirror.set(AgentMetricNames.heldFrames, [("fate", "queued")], to: switchCounters.heldFramesQueued, help: AgentMetricNames.heldFramesHelp)
        mirror.set(AgentMetricNames.heldFrames, [("fate", "delivered")], to: switchCounters.heldFramesDelivered, help: AgentMetricNames.heldFramesHelp)
        mirror.set(AgentMetricNames.heldFrames, [("fate", "forwarded")], to: switchCounters.heldFramesForwarded, help: AgentMetricNames.heldFramesHelp)
        mirror.set(AgentMetricNames.heldFrames, [("fate", "dropped")], to: switchCounters.heldFramesDropped, help: AgentMetricNames.heldFramesHelp)
    }
}
