import ControlAPI
import Foundation
import Hypervisor
import MeshWire
import Placement
import SecureChannel
import ShellSupport

/// `vm.startPlaced` (`hostmesh vm start VM --place auto`, Protocol.md §10.10): starts a VM defined
/// on any host of the mesh on the best host for it. The agent where the command runs finds the
/// VM's owner (itself, or the first member that answers a `start_vm` relay); the owner ranks the
/// hosts with `Placement.assess` on its DRS view, and starts the VM itself or hands it over: each
/// offer journaled in the VM's row before it is sent, at an epoch above every earlier one, so the
/// VM runs on one host at most whatever fails.
extension InitialPlacement {
    /// Places and starts VM `reference`, wherever it is defined.
    func startPlaced(_ reference: String) async throws -> DRSTypes.Placed {
        do {
            _ = try await vms.find(reference)
            return try await startOwned(reference)
        } catch let error as ControlError where error.code == "not_found" {
            // Not defined here: ask the others below.
        }
        let members = await membership.service.members().map(\.member)
            .filter { $0.id.hostID != controller.hostID && $0.status == .alive && $0.metadata?.domain == controller.domain }
            .sorted { $0.id.hostID < $1.id.hostID }
        var unanswered: [String] = []
        for member in members {
            guard let channel = member.metadata?.channelAddress else { continue }
            var envelope = Hostmesh_V1_AgentEnvelope()
            envelope.vmPlaceRequest.startVm = reference
            let reply: Hostmesh_V1_VmPlaceReply
            do { reply = try await send(envelope, to: HostPort(host: channel.host, port: Int(channel.port)), host: member.id.hostID) } catch {
                unanswered.append("\(member.id.hostID): \(error)")
                continue
            }
            if reply.errorCode == "not_found" { continue }
            guard reply.errorCode.isEmpty else { throw ControlError(code: reply.errorCode, message: reply.errorMessage) }
            return try JSONDecoder().decode(DRSTypes.Placed.self, from: reply.placed)
        }
        throw ControlError.notFound("no host of the mesh defines a VM named or with id \(reference)"
                                    + (unanswered.isEmpty ? "" : " (no answer from \(unanswered.joined(separator: "; ")))"))
    }

    /// The owner's part: rank, then start here or hand over, best host first. Refused
    /// everywhere, the VM is taken back above every epoch offered; an offer without an answer
    /// leaves it held (in doubt) here.
    func startOwned(_ reference: String) async throws -> DRSTypes.Placed {
        let stored = try await vms.beginHandover(reference)
        var lastOffered = stored.epoch
        do {
            return try await place(stored, lastOffered: &lastOffered)
        } catch let error as HandoverInDoubt {
            await vms.endHandover(stored.id)
            throw ControlError.unavailable("\(stored.name): \(error)")
        } catch {
            if lastOffered > stored.epoch {
                do { try await vms.takeBack(stored.id, epoch: lastOffered + 1) } catch {
                    logger.error("cannot take back a VM whose handover every host refused", metadata: ["vm.id": "\(stored.id)", "error": "\(error)"])
                }
            }
            await vms.endHandover(stored.id)
            throw error
        }
    }

    private func place(_ stored: StoredVM, lastOffered: inout Int64) async throws -> DRSTypes.Placed {
        let spec = try stored.decodedSpec()
        try await controller.checkNewVM(spec)
        let (_, view) = await controller.decide()
        let assessment = Placement.assess(candidate(spec), in: view)
        guard !assessment.scores.isEmpty else {
            throw ControlError.unavailable(PlacementError.noHost(vm: spec.name, reasons: assessment.refusals).description)
        }
        var refusals: [String] = []
        for (rank, choice) in assessment.scores.enumerated() {
            let info: VMInfo
            do {
                if choice.host == controller.hostID {
                    // Here: an ordinary start (the handover mark ends first: start marks the VM
                    // itself), above every epoch offered to hosts that refused.
                    if lastOffered > stored.epoch {
                        lastOffered += 1
                        try await vms.takeBack(stored.id, epoch: lastOffered)
                    }
                    await vms.endHandover(stored.id)
                    do { info = try await vms.start(stored.id) } catch {
                        _ = try await vms.beginHandover(stored.id) // marked again for the next offers
                        throw error
                    }
                } else {
                    lastOffered += 1
                    info = try await offer(spec, epoch: lastOffered, to: choice.host)
                    do { try await vms.completeHandover(stored.id, to: choice.host, epoch: lastOffered) } catch {
                        // It runs there: this copy stays held (never taken back) until the new owner's record fences it.
                        throw HandoverInDoubt(host: choice.host, epoch: lastOffered, cause: "it accepted, but this host could not record it: \(error)")
                    }
                }
            } catch let error as ControlError where ["conflict", "unavailable", "failed", "bad_request"].contains(error.code) {
                refusals.append("\(choice.host): \(error.message)")
                continue
            }
            let reason = Self.reason(choice, rank: rank, assessment: assessment, refusals: refusals)
            logger.notice("VM placed at start", metadata: ["vm.name": "\(spec.name)", "drs.host": "\(choice.host)", "drs.reason": "\(reason)"])
            DRSMetrics.placed(kind: "start", vm: spec.name, vmID: spec.id, on: choice.host, events: controller.events)
            return DRSTypes.Placed(host: choice.host, info: info, ranking: assessment.scores.map(\.host), reason: reason)
        }
        throw ControlError.unavailable("no host took \(spec.name): \((refusals + assessment.refusals).joined(separator: "; "))")
    }

    /// The VM as placement sees it before it runs (its CPU demand assumed, §10.6).
    func candidate(_ spec: VMSpec) -> PlacementVM {
        let resources = spec.resources
        return PlacementVM(id: spec.id, name: spec.name, host: "", cpuDemandMilli: spec.vcpus * Self.assumedMilliPerVCPU, memoryMiB: spec.memoryMiB,
                           pool: resources?.pool, cpu: resources.map { DRSController.allocation($0.cpu) } ?? .unreserved,
                           memory: resources.map { DRSController.allocation($0.memory) } ?? .unreserved)
    }

    /// Why `choice`: its score beside the runner-up's, the better hosts that refused, and the
    /// hosts that could not take the VM at all.
    static func reason(_ choice: Placement.HostScore, rank: Int, assessment: Placement.Assessment, refusals: [String]) -> String {
        var parts = [String(format: "mesh imbalance %.3f with it there, host load %.2f", choice.imbalanceAfter, choice.loadAfter)]
        if let next = assessment.scores.dropFirst(rank + 1).first {
            parts.append(String(format: "next best %@ at %.3f", next.host, next.imbalanceAfter))
        }
        if !choice.brokenShouldRules.isEmpty { parts.append("breaks should rule(s) \(choice.brokenShouldRules.joined(separator: ", ")): no host keeps them") }
        if !refusals.isEmpty { parts.append("refused by " + refusals.joined(separator: "; ")) }
        if !assessment.refusals.isEmpty { parts.append("not eligible: " + assessment.refusals.joined(separator: "; ")) }
        return parts.joined(separator: "; ")
    }

    /// The handover's answer never came: the offer may have taken effect.
    struct HandoverInDoubt: Error, CustomStringConvertible {
        var host: String
        var epoch: Int64
        var cause: String
        var description: String {
            "no answer from \(host) to the handover at epoch \(epoch) (\(cause)); the VM stays held here: "
                + "`hostmesh vm resolve` asks \(host) and drops this row or takes the VM back"
        }
    }

    /// Offers VM `spec` to `host` at `epoch`, journaled first; a refusal is a `ControlError`, no answer `HandoverInDoubt`.
    private func offer(_ spec: VMSpec, epoch: Int64, to host: String) async throws -> VMInfo {
        let members = await membership.service.members().map(\.member)
        guard let channel = members.first(where: { $0.id.hostID == host })?.metadata?.channelAddress else {
            throw ControlError.unavailable("no channel address yet")
        }
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.vmPlaceRequest.create = try JSONEncoder().encode(ControlTypes.CreateVM(spec: spec, start: true))
        envelope.vmPlaceRequest.epoch = UInt64(epoch)
        envelope.vmPlaceRequest.handedOverBy = controller.hostID
        // Connected before the offer is journaled: a host that cannot be reached got nothing.
        let connection = try await connect(to: HostPort(host: channel.host, port: Int(channel.port)), host: host)
        do { try await vms.journalOffer(spec.id, to: host, epoch: epoch) } catch {
            // Nothing was offered: the connection goes unused.
            try? await connection.channel.executeThenClose { _, _ in } // closing an unused connection: its failure changes nothing
            throw error
        }
        let reply: Hostmesh_V1_VmPlaceReply
        do {
            // Bounded: a host that never answers leaves the offer in doubt, not this call hanging.
            let answer = try await withTimeout(Self.handoverTimeout) { [envelope] in try await connection.request(envelope)?.body }
            guard case .vmPlaceReply(let placeReply)? = answer else { throw ControlError.failed("no reply") }
            reply = placeReply
        } catch {
            throw HandoverInDoubt(host: host, epoch: epoch, cause: "\(error)")
        }
        guard reply.errorCode.isEmpty else {
            // A definite refusal: nothing of the VM was kept there. The copy here is free again
            // (the next offer, or the take-back, moves its epoch above this one).
            try await vms.releaseOffer(spec.id, to: host, epoch: epoch)
            throw ControlError(code: reply.errorCode, message: reply.errorMessage)
        }
        return try JSONDecoder().decode(VMInfo.self, from: reply.info)
    }
}
