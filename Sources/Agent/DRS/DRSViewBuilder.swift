import HostHealth
import Membership
import MeshWire
import Placement

/// Builds placement's input from what this agent knows: members' gossiped capacity, the hosts'
/// DRS load reports and the replicated records (Protocol.md §10.1-12.2). Pure, so two agents that
/// know the same build the same view.
enum DRSViewBuilder {
    /// Memory each host keeps for itself (the agent, QEMU overheads), in MiB.
    static let hostReserveMiB = 512

    /// A member as a placement host: who may take VMs, with the reason when not.
    /// A host that is not healthy takes nothing; `healthPolicy` says whether it is evacuated
    /// too (Protocol.md §11.3).
    static func host(_ member: Member, domain: String, maintenance: Set<String>, reserveMiB: Int = hostReserveMiB,
                     healthPolicy: HealthPolicy = .off) -> PlacementHost {
        let id = member.id.hostID
        guard member.status == .alive else { return PlacementHost(id: id, cpuCapacityMilli: 0, memoryCapacityMiB: 0, availability: .unavailable("\(member.status)")) }
        guard let m = member.metadata, m.channelAddress != nil else {
            return PlacementHost(id: id, cpuCapacityMilli: 0, memoryCapacityMiB: 0, availability: .unavailable("no metadata yet"))
        }
        let availability: PlacementHost.Availability
        if m.domain != domain {
            availability = .unavailable("domain \(m.domain)")
        } else if maintenance.contains(id) || m.maintenance {
            availability = .evacuating
        } else if m.health != .ok {
            let state = HealthState(m.health)
            availability = healthPolicy.evacuates(state) ? .evacuating
                : .unavailable(m.healthReasons.first ?? state.rawValue) // a reason starts with its state ("degraded: ...")
        } else {
            availability = .available
        }
        return PlacementHost(id: id, cpuCapacityMilli: Int(m.cores) * 1000, memoryCapacityMiB: Int(m.memoryTotalBytes >> 20) - reserveMiB,
                             memoryFreeMiB: Int(m.memoryFreeBytes >> 20) - reserveMiB, availability: availability,
                             settling: m.migrationsInFlight > 0)
    }

    /// Why a member without a load report takes nothing.
    static let noReport = "no DRS load report yet"

    /// The view: hosts from `members`; VMs from each alive host's latest load report. A host
    /// without a report yet takes nothing (its VMs are unknown, so its load is too). A VM two
    /// hosts report (mid-handover) is busy on both: nothing moves it until one stops reporting it.
    static func input(members: [Member], loads: [String: Hostmesh_V1_DrsHostLoad], rules: [PlacementRule], maintenance: Set<String>,
                      domain: String, nowUnix: Int64, healthPolicy: HealthPolicy = .off, pools: [ResourcePool] = []) -> PlacementInput {
        var hosts: [PlacementHost] = []
        var vms: [PlacementVM] = []
        var seen: [String: Int] = [:]
        for member in members.sorted(by: { $0.id.hostID < $1.id.hostID }) {
            var host = host(member, domain: domain, maintenance: maintenance, healthPolicy: healthPolicy)
            guard let load = loads[host.id] else {
                // Its VMs are unknown: it takes nothing, and it is not "empty" either.
                if case .unavailable = host.availability {} else { host.availability = .unavailable(noReport) }
                hosts.append(host)
                continue
            }
            hosts.append(host)
            guard member.status == .alive else { continue }
            for reported in load.vms {
                var vm = PlacementVM(id: reported.vmID, name: reported.name, host: host.id, cpuDemandMilli: Int(reported.cpuMilli),
                                     memoryMiB: Int(reported.memoryMib), movable: reported.heldUntilUnix <= nowUnix && !reported.busy && !reported.paused,
                                     busy: reported.busy, paused: reported.paused, memoryDemandMiB: reported.memoryUsedMib == 0 ? nil : Int(reported.memoryUsedMib),
                                     pool: reported.pool.isEmpty ? nil : reported.pool,
                                     cpu: DRSRecordCoding.allocation(reported.cpuAllocation), memory: DRSRecordCoding.allocation(reported.memoryAllocation),
                                     automation: DRSSettings.Automation(rawValue: reported.automation),
                                     threshold: (1...5).contains(reported.threshold) ? Int(reported.threshold) : nil)
                if let earlier = seen[vm.id] {
                    vms[earlier].busy = true
                    vms[earlier].movable = false
                    vm.busy = true
                    vm.movable = false
                }
                seen[vm.id] = vms.count
                vms.append(vm)
            }
        }
        return PlacementInput(hosts: hosts, vms: vms, rules: rules, pools: pools)
    }

    /// Migrations in flight in the whole mesh, from alive members' gossiped capacity.
    static func migrationsInFlight(_ members: [Member]) -> Int {
        members.filter { $0.status == .alive }.reduce(0) { $0 + Int($1.metadata?.migrationsInFlight ?? 0) }
    }
}
