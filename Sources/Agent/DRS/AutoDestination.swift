import ControlAPI
import Hypervisor
import Placement

/// `migrate --auto` (Protocol.md §10.6, §10.9): the best other host for a running VM, ranked by
/// `Placement.assess` on the DRS view, so the choice keeps the VM's reservations (a host whose
/// unreserved capacity is below them is left out), the `must` rules and maintenance, as DRS does.
extension InitialPlacement {
    struct AutoDestination: Sendable {
        var host: String
        var channel: HostPort
        var reason: String
    }

    /// The best host other than this one for VM `spec`, or `unavailable` naming why no host fits.
    func migrationDestination(for spec: VMSpec) async throws -> AutoDestination {
        var (_, view) = await controller.decide()
        let members = await membership.service.members().map(\.member)
        // The VM as the view has it (its measured demand), taken off this host to be placed anew.
        var vm = candidate(spec)
        if let measured = view.vms.first(where: { $0.id == spec.id }) {
            vm.cpuDemandMilli = measured.cpuDemandMilli
            vm.memoryDemandMiB = measured.memoryDemandMiB
        }
        // A member that joined moments ago may have sent no load report yet (its first goes out
        // once it knows this host, then every 10 syncs): it is judged by its gossiped capacity,
        // its load standing in for its VMs (as before DRS). Its own admission still checks the
        // VM's reservations against what it runs, so nothing is admitted that does not fit.
        let maintenance = await controller.hostsInMaintenance
        for h in view.hosts.indices where view.hosts[h].availability == .unavailable(DRSViewBuilder.noReport) {
            guard let member = members.first(where: { $0.id.hostID == view.hosts[h].id }), let m = member.metadata else { continue }
            view.hosts[h] = DRSViewBuilder.host(member, domain: controller.domain, maintenance: maintenance)
            view.vms.append(PlacementVM(id: "\u{0}host-" + member.id.hostID, name: "load of " + member.id.hostID, host: member.id.hostID,
                                        cpuDemandMilli: Int(m.cpuLoadMilli) * Int(m.cores),
                                        memoryMiB: max(0, Int((m.memoryTotalBytes - min(m.memoryTotalBytes, m.memoryFreeBytes)) >> 20))))
        }
        view.vms.removeAll { $0.id == spec.id }
        let assessment = Placement.assess(vm, in: view)
        let others = assessment.scores.enumerated().filter { $0.element.host != controller.hostID }
        for (rank, choice) in others {
            guard let channel = members.first(where: { $0.id.hostID == choice.host })?.metadata?.channelAddress else { continue }
            return AutoDestination(host: choice.host, channel: HostPort(host: channel.host, port: Int(channel.port)),
                                   reason: Self.reason(choice, rank: rank, assessment: assessment, refusals: []))
        }
        throw ControlError.unavailable(PlacementError.noHost(vm: spec.name, reasons: assessment.refusals.filter { !$0.hasPrefix(controller.hostID + ":") }).description)
    }
}
