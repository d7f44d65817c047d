import ControlAPI
import Hypervisor
import Placement

/// `migrate --auto` (Protocol.md §12.6, §12.9): the best other host for a running VM, ranked by
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
        // A member that joined moments ago has no load report yet (its VMs are unknown): wait a
        // few syncs for it rather than refuse (Protocol.md §12.2).
        for _ in 0..<3 {
            do { return try await bestOtherHost(for: spec) } catch let error as ControlError where error.message.contains(DRSViewBuilder.noReport) {
                try await Task.sleep(for: .seconds(controller.configuration.syncInterval))
            }
        }
        return try await bestOtherHost(for: spec)
    }

    private func bestOtherHost(for spec: VMSpec) async throws -> AutoDestination {
        var (_, view) = await controller.decide()
        // The VM as the view has it (its measured demand), taken off this host to be placed anew.
        var vm = candidate(spec)
        if let measured = view.vms.first(where: { $0.id == spec.id }) {
            vm.cpuDemandMilli = measured.cpuDemandMilli
            vm.memoryDemandMiB = measured.memoryDemandMiB
        }
        view.vms.removeAll { $0.id == spec.id }
        let assessment = Placement.assess(vm, in: view)
        let members = await membership.service.members().map(\.member)
        let others = assessment.scores.enumerated().filter { $0.element.host != controller.hostID }
        for (rank, choice) in others {
            guard let channel = members.first(where: { $0.id.hostID == choice.host })?.metadata?.channelAddress else { continue }
            return AutoDestination(host: choice.host, channel: HostPort(host: channel.host, port: Int(channel.port)),
                                   reason: Self.reason(choice, rank: rank, assessment: assessment, refusals: []))
        }
        throw ControlError.unavailable(PlacementError.noHost(vm: spec.name, reasons: assessment.refusals.filter { !$0.hasPrefix(controller.hostID + ":") }).description)
    }
}
