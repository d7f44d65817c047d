import CoreMetrics
import Placement

/// What DRS reports through swift-metrics (published at `/metrics` when `metrics_listen` is set)
/// and, beside it, through the agent's event hub (`hostmesh events`): each DRS move this host
/// starts and how it ended, and each VM placed (Protocol.md §10.5, §10.6, §10.10).
enum DRSMetrics {
    static let moves = "hostmesh_drs_moves_total"
    static let placements = "hostmesh_drs_placements_total"

    /// The `reason` label of a move: `balance`, `evacuation` or `rule`.
    static func label(_ reason: MoveReason) -> String {
        switch reason {
        case .balance: "balance"
        case .evacuation: "evacuation"
        case .rule: "rule"
        }
    }

    /// A DRS move of this host's VM ended: `completed` or `failed`.
    static func moveEnded(_ move: PlacementMove, result: String, events: AgentEventHub?) {
        CoreMetrics.Counter(label: moves, dimensions: [("reason", label(move.reason)), ("result", result)]).increment()
        events?.publish("drs.move.\(result)", peer: move.to, vm: move.vmName, vmID: move.vm)
    }

    /// A DRS move of this host's VM started.
    static func moveStarted(_ move: PlacementMove, events: AgentEventHub?) {
        events?.publish("drs.move.started", peer: move.to, vm: move.vmName, vmID: move.vm)
    }

    /// A VM was placed by `vm.place` (`kind` `create`) or `vm.startPlaced` (`start`) on `host`.
    static func placed(kind: String, vm: String, vmID: String, on host: String, events: AgentEventHub?) {
        CoreMetrics.Counter(label: placements, dimensions: [("kind", kind)]).increment()
        events?.publish("drs.placed", peer: host, vm: vm, vmID: vmID)
    }
}
