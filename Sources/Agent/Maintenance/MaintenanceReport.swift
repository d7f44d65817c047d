import ControlAPI
import Placement

/// A host's maintenance as an agent sees it (Protocol.md §10.7), from its maintenance record,
/// the view and the current plan. Pure: every agent with the same view reports the same.
enum MaintenanceReport {
    /// `in service` without an active record; `ready for maintenance` once the host reports no
    /// VM (a host that has not reported is never "ready": its VMs are unknown); else `evacuating`
    /// with what is left, what is moving and what cannot go, with the reasons.
    static func status(of host: String, request: MaintenanceRequest?, view: PlacementInput, plan: PlacementPlan) -> DRSTypes.MaintenanceStatus {
        let here = view.vms.filter { $0.host == host }.sorted { $0.name < $1.name }
        let blocked = plan.unplaced.filter { $0.host == host }.map { DRSTypes.Blocked(vm: $0.vmName, reason: $0.reason) }
        let active = request?.active == true
        var reported = false
        if let known = view.hosts.first(where: { $0.id == host }) {
            if case .unavailable = known.availability {} else { reported = true }
        }
        let state = !active ? "in service" : (here.isEmpty && reported ? "ready for maintenance" : "evacuating")
        return DRSTypes.MaintenanceStatus(host: host, state: state, since: active ? request?.since : nil, remaining: here.map(\.name),
                                          moving: here.filter(\.busy).map(\.name), blocked: blocked)
    }
}
