import ControlAPI
import Foundation
import HostHealth
import Membership

/// `host.health` (Protocol.md §7, §11): an operator's state for any host, from any agent (a
/// replicated record the host applies to itself), the mesh's evacuation policy, and a host's
/// health as this agent knows it (its own measured now; another's as gossiped).
struct HealthControlHandler: Sendable {
    let controller: DRSController
    let monitor: HealthMonitor
    let membership: AgentMembership

    static let methods: Set<String> = ["host.health"]

    func handle(_ request: ControlRequest) async throws -> any Encodable & Sendable {
        let p = try request.params(OperationsTypes.Health.self)
        switch p.action {
        case .policy:
            if let raw = p.policy, let policy = HealthPolicy(rawValue: raw) {
                if await controller.healthPolicy != policy { try await controller.write(DRSRecordBody.healthPolicyKey, .healthPolicy(policy)) }
                return ControlTypes.Text(text: "health policy: \(policy.rawValue) (replicated to every agent)")
            }
            return ControlTypes.Text(text: "health policy: \(await controller.healthPolicy.rawValue)")
        case .set:
            let host = try await known(p.host ?? controller.hostID)
            let state = HealthState(rawValue: p.state ?? "") ?? .healthy
            let reason = p.reason ?? ""
            try await controller.write(DRSRecordBody.healthKey(host), .health(HealthMark(state: state, reason: reason, since: Int64(Date().timeIntervalSince1970))))
            if host == controller.hostID { await monitor.report() }
            return try await status(of: host)
        case .status:
            return try await status(of: try await known(p.host ?? controller.hostID))
        }
    }

    private func known(_ host: String) async throws -> String {
        guard await membership.service.members().contains(where: { $0.member.id.hostID == host }) else {
            throw ControlError.notFound("no member has host id \(host): `hostmesh members` lists them")
        }
        return host
    }

    func status(of host: String) async throws -> OperationsTypes.HealthStatus {
        let policy = await controller.healthPolicy
        let mark = await controller.healthMark(of: host).map { "\($0.state.rawValue): \($0.reason)" }
        if host == controller.hostID {
            let status = await monitor.status
            let m = await monitor.lastMeasurement
            var measured: [String: Double] = [:]
            if let m {
                measured["qemu failures"] = Double(m.qemuFailures.count)
                measured["journal write ms"] = m.journalWriteMs.map { $0.isFinite ? $0 : -1 }
                for (k, v) in m.pressure { measured["pressure \(k) %"] = v }
                measured["event loop lag ms"] = m.eventLoopLagMs
                measured["clock skew ms"] = m.clockSkewMs
            }
            return OperationsTypes.HealthStatus(host: host, state: status.state.rawValue, reasons: status.reasons.map(\.description), operatorMark: mark,
                                                policy: policy.rawValue, evacuating: policy.evacuates(status.state), measurements: measured)
        }
        let member = await membership.service.members().first { $0.member.id.hostID == host }?.member
        guard let metadata = member?.metadata else {
            return OperationsTypes.HealthStatus(host: host, state: "unknown", reasons: ["no metadata gossiped yet"], operatorMark: mark,
                                                policy: policy.rawValue, evacuating: false, measurements: nil)
        }
        let state = HealthState(metadata.health)
        return OperationsTypes.HealthStatus(host: host, state: state.rawValue, reasons: metadata.healthReasons, operatorMark: mark,
                                            policy: policy.rawValue, evacuating: policy.evacuates(state), measurements: nil)
    }
}
