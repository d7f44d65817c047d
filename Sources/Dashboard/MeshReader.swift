import ControlAPI
import Foundation

/// Reads what the dashboard shows from the local agent, through the control socket the command
/// line uses: the dashboard sees exactly what `hostmesh` would print.
struct MeshReader: Sendable {
    let control: ControlClient
    /// Members beyond this many are shown without their maintenance detail (one call each).
    static let maintenanceLookups = 32

    /// One snapshot. A question the agent cannot answer leaves its part empty and its error in
    /// `problems`, so the page shows what it can and says what it could not.
    func snapshot(operations: [DashboardOperation], live: [LiveMigration]) async -> MeshSnapshot {
        var problems: [String] = []
        func ask<P: Encodable & Sendable, R: Decodable>(_ method: String, _ params: P, as: R.Type) async -> R? {
            do { return try await control.call(method, params, as: R.self) } catch {
                problems.append("\(method): \(error)")
                return nil
            }
        }
        let status = await ask("status", Empty(), as: ControlTypes.Status.self)
        let members = await ask("members", Empty(), as: [MemberRow].self) ?? []
        let vms = await ask("drs.vms", Empty(), as: [DRSTypes.MeshVM].self) ?? []
        let local = await ask("vm.list", Empty(), as: [VMInfo].self) ?? []
        let history = await ask("migrations", Empty(), as: [MigrationRecord].self) ?? []
        let drs = await ask("drs.status", Empty(), as: DRSTypes.Status.self)
        let recommendations = await ask("drs.recommendations", Empty(), as: [DRSTypes.Recommendation].self) ?? []
        var maintenance: [DRSTypes.MaintenanceStatus] = []
        for member in members.prefix(Self.maintenanceLookups) where member.status == "alive" || member.status == "suspect" {
            // A member DRS has not seen yet answers not_found: it is in service as far as we know.
            if let state = try? await control.call("host.maintenance", DRSTypes.Maintenance(action: .status, host: member.host),
                                                    as: DRSTypes.MaintenanceStatus.self), state.state != "in service" {
                maintenance.append(state)
            }
        }
        return MeshSnapshot(host: status?.hostID ?? "", software: status?.software ?? "", members: members, vms: vms, localVMs: local,
                            migrations: history.sorted { $0.startedAt > $1.startedAt }, drs: drs, recommendations: recommendations,
                            maintenance: maintenance, operations: operations, live: live, problems: problems)
    }
}
