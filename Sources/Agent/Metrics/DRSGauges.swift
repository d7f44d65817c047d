import Placement
import Prometheus
import Telemetry

/// DRS and maintenance as this agent sees them at scrape time, read from the controller (the same
/// figures `drs status` and `drs recommendations` print): the imbalance and its target, the moves
/// the current plan recommends, the moves this host started, the hosts in maintenance and when the
/// last round ran. Reads only: nothing here changes what DRS decides.
struct DRSGauges: Sendable {
    let registry: PrometheusCollectorRegistry
    let mirror: CounterMirror
    let controller: DRSController

    func refresh() async {
        let (decision, view) = await controller.decide()
        let (_, imbalance) = Placement.loads(view)
        gauge(AgentMetricNames.drsImbalance, AgentMetricNames.drsImbalanceHelp).set(imbalance)
        gauge(AgentMetricNames.drsTarget, AgentMetricNames.drsTargetHelp).set(decision.plan.target)
        gauge(AgentMetricNames.drsRecommended, AgentMetricNames.drsRecommendedHelp).set(Double(decision.plan.moves.count))
        mirror.set(AgentMetricNames.drsMovesStarted, to: UInt64(max(0, await controller.movesStarted)), help: AgentMetricNames.drsMovesStartedHelp)
        gauge(AgentMetricNames.maintenanceHosts, AgentMetricNames.maintenanceHostsHelp).set(Double(await controller.hostsInMaintenance.count))
        if let last = await controller.roundTime {
            gauge(AgentMetricNames.drsLastRound, AgentMetricNames.drsLastRoundHelp).set(last)
        }
    }

    private func gauge(_ name: String, _ help: String) -> Gauge {
        registry.makeGauge(descriptor: .init(metricName: name, unitName: "", helpText: help))
    }
}
