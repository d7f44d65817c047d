import ControlAPI
import Foundation
import Hypervisor
import MeshCrypto
import Placement

/// The control methods of DRS, rules and maintenance (Protocol.md §7): `drs.status`, `drs.set`,
/// `drs.recommendations`, `drs.vms`, `drs.apply`, `rule.add`, `rule.list`, `rule.remove`, `host.maintenance`,
/// and the pool methods (`PoolControlHandler`).
struct DRSControlHandler: Sendable {
    let controller: DRSController
    let placement: InitialPlacement
    /// The mesh's restart policy, for a failed move's report (`MigrationFailureReport`).
    let restartDefault: VMSpec.RestartPolicy

    static let methods = Set(["drs.status", "drs.set", "drs.recommendations", "drs.apply", "rule.add", "rule.list", "rule.remove", "host.maintenance", "vm.place", "vm.startPlaced", "drs.vms"])
        .union(PoolControlHandler.methods)

    func handle(_ request: ControlRequest) async throws -> any Encodable & Sendable {
        switch request.method {
        case let method where PoolControlHandler.methods.contains(method):
            return try await PoolControlHandler(controller: controller).handle(request)
        case "vm.place":
            return try await placement.place(try request.params(DRSTypes.Place.self).create)
        case "vm.startPlaced":
            return try await placement.startPlaced(try request.params(ControlTypes.VMReference.self).vm)
        case "drs.status":
            let (decision, view) = await controller.decide()
            let settings = await controller.settings
            let (loads, imbalance) = Placement.loads(view)
            let hosts = view.hosts.sorted { $0.id < $1.id }.map { host in
                DRSTypes.HostLoad(host: host.id, load: loads[host.id] ?? 0, vms: view.vms.filter { $0.host == host.id }.count, state: Self.state(host.availability))
            }
            return DRSTypes.Status(automation: settings.automation, threshold: settings.threshold, intervalSeconds: controller.configuration.interval,
                                   imbalance: imbalance, target: decision.plan.target, hosts: hosts,
                                   movesStarted: await controller.movesStarted, lastRound: await controller.roundTime)
        case "drs.set":
            let p = try request.params(DRSTypes.Set.self)
            var settings = await controller.settings
            if let automation = p.automation { settings.automation = automation }
            if let threshold = p.threshold { settings.threshold = threshold }
            try await controller.write(DRSRecordBody.settingsKey, .settings(settings))
            return ControlTypes.Text(text: "DRS: automation \(settings.automation.rawValue), threshold \(settings.threshold) (replicated to every agent)")
        case "drs.recommendations":
            return await recommendations()
        case "drs.vms":
            let (_, view) = await controller.decide()
            return view.vms.sorted { ($0.host, $0.name) < ($1.host, $1.name) }.map {
                DRSTypes.MeshVM(id: $0.id, name: $0.name, host: $0.host, memoryMiB: $0.memoryMiB, cpuDemandMilli: $0.cpuDemandMilli,
                                movable: $0.movable, busy: $0.busy, paused: $0.paused)
            }
        case "drs.apply":
            let p = try request.params(DRSTypes.Apply.self)
            let (decision, view) = await controller.decide()
            let shown = await controller.shownMove(p.id)
            guard let move = decision.plan.moves.first(where: { Self.id($0) == p.id }) ?? shown else {
                throw ControlError.notFound("no recommendation has id \(p.id): `hostmesh drs recommendations` lists the moves now")
            }
            // A recommendation shown earlier is checked again against the mesh as it is now.
            if let refusal = Placement.refusal(moving: move.vm, from: move.from, to: move.to, in: view) {
                throw ControlError.conflict("\(move.vmName) cannot move to \(move.to) now: \(refusal); `hostmesh drs recommendations` lists the moves now")
            }
            let destination = try await controller.claim(move)
            let report: MigrationReport
            do { report = try await controller.execute(move, to: destination) } catch {
                // The migration's own message says where the guest is (source, destination or in
                // doubt); as for `migrate`, a guest whose QEMU died here is reported as lost.
                let code = (error as? ControlError)?.code ?? "failed"
                let failure = ControlError(code: code, message: "DRS move of \(move.vmName) from \(move.from) to \(move.to) failed: \(error)")
                throw code == "failed" ? await MigrationFailureReport.honest(failure, vm: move.vm, vms: placement.vms, meshDefault: restartDefault) : failure
            }
            return ControlTypes.Text(text: "moved \(move.vmName) from \(move.from) to \(move.to) (\(move.reason)) in \(report.totalMs) ms, downtime \(report.downtimeMs) ms")
        case "rule.add":
            let p = try request.params(DRSTypes.AddRule.self)
            let rule = p.rule
            let (_, view) = await controller.decide()
            let hosts = Set(view.hosts.map(\.id))
            if let unknown = rule.hosts.first(where: { !hosts.contains($0) }) {
                throw ControlError.notFound("rule \(rule.name) names host \(unknown), which is no member: `hostmesh members` lists them")
            }
            let vms = Set(view.vms.flatMap { [$0.id, $0.name] })
            if p.allowUnknownVMs != true, let unknown = rule.vms.first(where: { !vms.contains($0) }) {
                throw ControlError.notFound("rule \(rule.name) names VM \(unknown), which no host reports: check the name (`hostmesh vm list` on its host), "
                    + "or allow VMs still to be created (`--allow-unknown-vm`)")
            }
            do { try RuleConflicts.check(rule, against: await controller.rules) } catch { throw ControlError.conflict(error.description) }
            try await controller.write(DRSRecordBody.ruleKey(rule.name), .rule(rule))
            return ControlTypes.Text(text: "rule \(rule.name) written (replicated to every agent)")
        case "rule.list":
            let (decision, _) = await controller.decide()
            let broken = Dictionary(decision.plan.violationsBefore.map { ($0.rule.name, $0.vms) }, uniquingKeysWith: { a, _ in a })
            return await controller.recordRows().compactMap { record -> DRSTypes.RuleRow? in
                guard case .rule(let rule)? = record.body else { return nil }
                return DRSTypes.RuleRow(rule: rule, version: record.version, writer: record.writer, brokenBy: broken[rule.name] ?? [])
            }
        case "rule.remove":
            let p = try request.params(DRSTypes.RemoveRule.self)
            guard await controller.rules.contains(where: { $0.name == p.name }) else {
                throw ControlError.notFound("no rule named \(p.name): `hostmesh rule list` shows them")
            }
            try await controller.write(DRSRecordBody.ruleKey(p.name), nil)
            return ControlTypes.Text(text: "rule \(p.name) removed (replicated to every agent)")
        case "host.maintenance":
            let p = try request.params(DRSTypes.Maintenance.self)
            let host = p.host ?? controller.hostID
            let (_, view) = await controller.decide()
            guard view.hosts.contains(where: { $0.id == host }) else {
                throw ControlError.notFound("no member has host id \(host): `hostmesh members` lists them")
            }
            switch p.action {
            case .enter:
                if await controller.maintenance(of: host)?.active != true {
                    try await controller.write(DRSRecordBody.maintenanceKey(host), .maintenance(MaintenanceRequest(active: true, since: Int64(Date().timeIntervalSince1970))))
                }
            case .exit:
                if await controller.maintenance(of: host)?.active == true {
                    try await controller.write(DRSRecordBody.maintenanceKey(host), .maintenance(MaintenanceRequest(active: false, since: Int64(Date().timeIntervalSince1970))))
                }
            case .status:
                break
            }
            return await maintenanceStatus(host)
        default:
            throw ControlError.badRequest("unknown method \"\(request.method)\"")
        }
    }

    /// The moves of the current plan, with ids for `drs apply`.
    func recommendations() async -> [DRSTypes.Recommendation] {
        let (decision, _) = await controller.decide()
        await controller.remember(decision.plan.moves.map { (Self.id($0), $0) })
        return decision.plan.moves.map {
            DRSTypes.Recommendation(id: Self.id($0), vm: $0.vm, vmName: $0.vmName, from: $0.from, to: $0.to, reason: $0.reason.description,
                                    imbalanceBefore: $0.imbalanceBefore, imbalanceAfter: $0.imbalanceAfter)
        }
    }

    /// A host's maintenance as this agent sees it now.
    func maintenanceStatus(_ host: String) async -> DRSTypes.MaintenanceStatus {
        let request = await controller.maintenance(of: host)
        let (decision, view) = await controller.decide()
        return MaintenanceReport.status(of: host, request: request, view: view, plan: decision.plan)
    }

    static func state(_ availability: PlacementHost.Availability) -> String {
        switch availability {
        case .available: return "available"
        case .evacuating: return "evacuating"
        case .unavailable(let why): return why
        }
    }

    /// A recommendation's id: 8 hex digits of BLAKE2b over VM, source and destination.
    static func id(_ move: PlacementMove) -> String {
        Blake2b.hash(Array("\(move.vm)|\(move.from)|\(move.to)".utf8), outputLength: 16).prefix(4).map { String(format: "%02x", $0) }.joined()
    }
}
