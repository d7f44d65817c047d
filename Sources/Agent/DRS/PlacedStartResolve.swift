import ControlAPI
import Foundation
import MeshWire
import MigrationService
import ShellSupport

/// `hostmesh vm resolve` of a VM whose placed-start handover got no answer (Protocol.md §10.12):
/// the old owner asks the host it offered the VM to what became of the offer, and either drops
/// its held row (the offer took effect there) or takes the VM back (the host did not take it and
/// now refuses the offer forever). A host that does not answer is never presumed: the operator
/// may take the VM back without its answer only once membership declares that host dead.
extension InitialPlacement {
    /// How long a handover offer or query waits for its answer before it counts as unanswered.
    static let handoverTimeout: Duration = .seconds(20)

    /// Settles VM `reference`'s hold when it comes from a placed start: an offer without an
    /// answer, or a copy made stale by the record of the host that took it. Nil: not such a hold
    /// (the VM's migration, if any, is `MigrationCoordinator.resolve`'s).
    func resolveHandover(_ reference: String, decision: ResolveDecision) async throws -> String? {
        let vm = try await vms.find(reference)
        guard let hold = vm.hold else { return nil }
        if let (host, epoch) = VMManager.offer(inHold: hold) {
            if case .show = decision { return try await resolveOffer(vm, to: host, epoch: epoch, decision: decision) }
            // Marked for the decision: an offer still waiting for its answer, or another resolve, is not raced.
            try await vms.mark(vm.id, .handingOver, name: vm.name)
            do {
                let text = try await resolveOffer(vm, to: host, epoch: epoch, decision: decision)
                await vms.endHandover(vm.id)
                return text
            } catch {
                await vms.endHandover(vm.id)
                throw error
            }
        }
        guard let newer = try await vms.newerOwner(of: vm.id, above: vm.epoch, hostID: controller.hostID) else { return nil }
        let state = "\(vm.name) is held here at epoch \(vm.epoch), and \(newer.owner) owns it at epoch \(newer.epoch): this copy is stale."
        switch decision {
        case .show:
            return state + "\n  `hostmesh vm resolve \(vm.name) --retry` drops this copy's row (the VM stays \(newer.owner)'s)."
        case .retry, .releaseHere(destinationRunsIt: true):
            guard let dropped = try await vms.dropStale(vm.id, hostID: controller.hostID) else {
                throw ControlError.conflict("\(vm.name) is busy or has a QEMU here: it is not dropped; try again once it is stopped")
            }
            return "\(vm.name): the stale copy's row is dropped here; the VM is \(dropped.owner)'s (epoch \(dropped.epoch))"
        case .resumeHere, .releaseHere:
            throw ControlError.conflict(state + " Nothing to resume or release: `--retry` drops this copy's row")
        }
    }

    /// The offer of `vm` to `host` at `epoch` got no answer.
    private func resolveOffer(_ vm: StoredVM, to host: String, epoch: Int64, decision: ResolveDecision) async throws -> String {
        let state = "\(vm.name) was offered to \(host) at epoch \(epoch) (`vm start --place auto`) and no answer came: it is held here at epoch \(vm.epoch)."
        switch decision {
        case .show:
            return state + """

              Choices:
                hostmesh vm resolve \(vm.name) --retry     ask \(host): drops this row if it took the VM, takes the VM back here if not
                hostmesh vm resolve \(vm.name) --resume-here --destination-fenced
                    takes the VM back without \(host)'s answer: refused unless membership declares \(host) dead
            """
        case .retry:
            let taken: Int64?
            do { taken = try await queryOffer(vm.id, epoch: epoch, host: host) } catch {
                throw ControlError.unavailable("\(state) \(host) does not answer (\(error)), so whether it took the VM is unknown and nothing is done. "
                    + "Ask again once it is back (`hostmesh vm resolve \(vm.name) --retry`); if it is gone for good, "
                    + "`--resume-here --destination-fenced` takes the VM back once membership declares \(host) dead")
            }
            if let taken {
                // Known there at the epoch offered: it is the host's. Above it: it went on (moved,
                // restarted elsewhere), and its owner's record comes by gossip.
                try await vms.completeHandover(vm.id, to: host, epoch: epoch, recording: taken == epoch)
                return taken == epoch
                    ? "\(host) took \(vm.name) at epoch \(epoch): the held row here is dropped; the VM is \(host)'s (`hostmesh vm list` there)"
                    : "\(host) took \(vm.name) at epoch \(epoch) and it went on from there (epoch \(taken) now): the held row here is dropped"
            }
            try await vms.takeBack(vm.id, epoch: epoch + 1)
            return "\(host) did not take \(vm.name) and now refuses that offer: the VM is this host's again at epoch \(epoch + 1), stopped"
        case .resumeHere(destinationFenced: true):
            let status = await membership.service.members().first { $0.member.id.hostID == host }?.member.status
            guard status == .dead || status == .left else {
                throw ControlError.conflict("\(state) \(host) is \(status.map { "\($0.rawValue)" } ?? "not a member this host knows") in membership, not declared dead: "
                    + "it may run the VM. `hostmesh vm resolve \(vm.name) --retry` asks it")
            }
            try await vms.takeBack(vm.id, epoch: epoch + 1)
            logger.warning("placed-start handover taken back without the other host's answer: membership declares it dead",
                           metadata: ["vm.id": "\(vm.id)", "mesh.peer": "\(host)", "vm.epoch": "\(epoch + 1)"])
            return "\(vm.name) taken back at epoch \(epoch + 1) without \(host)'s answer (membership declares it \(status!.rawValue)): "
                + "should \(host) come back running it, nothing fences its copy (this take-back carries no handover evidence, Protocol.md §6.12): "
                + "make sure it is powered off or stop the VM there"
        case .releaseHere(destinationRunsIt: true):
            try await vms.completeHandover(vm.id, to: host, epoch: epoch)
            return "\(vm.name) released to \(host) on your word (it runs there): the held row here is dropped"
        case .resumeHere(destinationFenced: false), .releaseHere(destinationRunsIt: false):
            return state // the coordinator's confirmations refuse these before (ControlHandler)
        }
    }

    /// Asks `host` what became of the offer of VM `id` at `epoch`: the epoch it knows the VM at
    /// if the offer took effect, nil if it did not (and it now refuses it). Throws when no answer
    /// comes within `handoverTimeout`.
    private func queryOffer(_ id: String, epoch: Int64, host: String) async throws -> Int64? {
        let members = await membership.service.members().map(\.member)
        guard let channel = members.first(where: { $0.id.hostID == host })?.metadata?.channelAddress else {
            throw ControlError.unavailable("no channel address known for \(host)")
        }
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.vmPlaceRequest.handoverQuery.vmID = id
        envelope.vmPlaceRequest.handoverQuery.epoch = UInt64(epoch)
        let address = HostPort(host: channel.host, port: Int(channel.port))
        let reply = try await withTimeout(Self.handoverTimeout) { [envelope] in try await send(envelope, to: address, host: host) }
        switch reply.handoverOutcome {
        case .taken: return try wireEpoch(reply.handoverEpoch, "\(host)'s epoch")
        case .fenced: return nil
        default:
            throw ControlError.failed(reply.errorCode.isEmpty ? "\(host) gave no outcome" : "\(host): \(reply.errorMessage)")
        }
    }

    /// This host's answer to a handover query from `peer` (the VM's owner until the offer).
    func serveHandoverQuery(_ query: Hostmesh_V1_DrsHandoverQuery, from peer: String) async throws -> Hostmesh_V1_VmPlaceReply {
        var reply = Hostmesh_V1_VmPlaceReply()
        if let taken = try await vms.answerHandoverQuery(query.vmID, epoch: try wireEpoch(query.epoch, "the queried epoch"), from: peer) {
            reply.handoverOutcome = .taken
            reply.handoverEpoch = UInt64(taken)
        } else {
            reply.handoverOutcome = .fenced
        }
        logger.notice("placed-start handover query answered", metadata: ["vm.id": "\(query.vmID)", "mesh.peer": "\(peer)",
                                                                        "drs.outcome": "\(reply.handoverOutcome)"])
        return reply
    }
}
