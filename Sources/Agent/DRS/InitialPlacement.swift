import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshWire
import Placement
import SecureChannel

/// `vm.place` (Protocol.md §10.6): ranks the mesh's hosts for a new VM with `Placement.rank`
/// and the replicated rules, then defines the VM on the best one: here, or on another agent by
/// a `VmPlaceRequest` over a secure channel. A host that refuses (it entered maintenance, its
/// memory went) is skipped for the next in the ranking.
struct InitialPlacement: Sendable {
    let controller: DRSController
    let vms: VMManager
    let credentials: ChannelCredentials
    let membership: AgentMembership
    let logger: Logger

    /// CPU a new VM is assumed to demand per vCPU until it is measured, thousandths of a core.
    static let assumedMilliPerVCPU = 500

    func place(_ request: ControlTypes.CreateVM) async throws -> DRSTypes.Placed {
        var request = request
        if let options = request.options {
            // The id is chosen here, so every host the request may go to defines the same VM.
            do { request = ControlTypes.CreateVM(spec: try options.spec(id: UUID().uuidString.lowercased()), start: request.start) } catch {
                throw ControlError.badRequest("cannot define \(options.name): \(error)")
            }
        }
        guard let spec = request.spec else { throw ControlError.badRequest("vm.place needs options or a spec") }
        // Its pool and reservations make sense in the mesh (Protocol.md §10.9), and count where it goes.
        try await controller.checkNewVM(spec)
        let (_, view) = await controller.decide()
        let assessment = Placement.assess(candidate(spec), in: view)
        guard !assessment.scores.isEmpty else {
            throw ControlError.unavailable(PlacementError.noHost(vm: spec.name, reasons: assessment.refusals).description)
        }
        let ranking = assessment.scores
        var refusals: [String] = []
        let members = await membership.service.members().map(\.member)
        for (rank, choice) in ranking.enumerated() {
            do {
                let info: VMInfo
                if choice.host == controller.hostID {
                    let created = try await vms.create(spec)
                    info = request.start ? try await Self.startCreated(created, on: choice.host, vms: vms) : created
                } else {
                    guard let channel = members.first(where: { $0.id.hostID == choice.host })?.metadata?.channelAddress else {
                        refusals.append("\(choice.host): no channel address yet")
                        continue
                    }
                    info = try await forward(request, to: HostPort(host: channel.host, port: Int(channel.port)), host: choice.host)
                }
                logger.notice("VM placed", metadata: ["vm.name": "\(spec.name)", "drs.host": "\(choice.host)",
                                                     "drs.imbalance_after": "\(String(format: "%.3f", choice.imbalanceAfter))"])
                DRSMetrics.placed(kind: "create", vm: spec.name, vmID: spec.id, on: choice.host, events: controller.events)
                return DRSTypes.Placed(host: choice.host, info: info, ranking: ranking.map(\.host),
                                       reason: Self.reason(choice, rank: rank, assessment: assessment, refusals: refusals))
            } catch let error as ControlError where error.code == "conflict" || error.code == "unavailable" {
                refusals.append("\(choice.host): \(error.message)")
            }
        }
        throw ControlError.unavailable("no host took \(spec.name): \(refusals.joined(separator: "; "))")
    }

    /// Starts a VM just defined on `host` by a placement. Once it is defined somewhere it must not
    /// be defined on a second host (both rows would be at epoch 1, neither fencing the other), so
    /// a start that fails is final: `failed`, which the placer does not try elsewhere.
    static func startCreated(_ created: VMInfo, on host: String, vms: VMManager) async throws -> VMInfo {
        do { return try await vms.start(created.id) } catch let error as ControlError {
            throw ControlError.failed("\(created.name) was defined on \(host) but did not start there: \(error.message). "
                + "It stays defined there: start it there once the cause is fixed, or remove it")
        }
    }

    /// Asks agent `host` to define the VM.
    private func forward(_ request: ControlTypes.CreateVM, to address: HostPort, host: String) async throws -> VMInfo {
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.vmPlaceRequest.create = try JSONEncoder().encode(request)
        let reply = try await send(envelope, to: address, host: host)
        guard reply.errorCode.isEmpty else { throw ControlError(code: reply.errorCode, message: "\(host): \(reply.errorMessage)") }
        return try JSONDecoder().decode(VMInfo.self, from: reply.info)
    }

    /// A secure channel to agent `host`; a host that cannot be reached is `unavailable`.
    func connect(to address: HostPort, host: String) async throws -> SecureConnection {
        var policy = ChannelPolicy()
        policy.expectedPeer = host
        do {
            return try await SecureConnection.connect(host: address.host, port: address.port,
                                                      configuration: SecureChannelConfiguration(credentials: credentials, policy: policy), logger: logger)
        } catch { throw ControlError.unavailable("cannot reach \(host): \(error)") }
    }

    /// Sends a placement request to agent `host` and returns its reply.
    func send(_ envelope: Hostmesh_V1_AgentEnvelope, to address: HostPort, host: String) async throws -> Hostmesh_V1_VmPlaceReply {
        let connection = try await connect(to: address, host: host)
        guard case .vmPlaceReply(let reply)? = try await connection.request(envelope)?.body else {
            throw ControlError.unavailable("\(host) did not answer the placement request")
        }
        return reply
    }

    /// A peer's placement request (Protocol.md §10.6, §10.10): define (and start) a new VM here,
    /// start one handed over at an epoch, or place and start one defined here; or say why not.
    func serve(_ request: Hostmesh_V1_VmPlaceRequest, from peer: String) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_VmPlaceReply()
        do {
            if !request.startVm.isEmpty {
                reply.placed = try JSONEncoder().encode(try await startOwned(request.startVm))
            } else if request.hasHandoverQuery {
                reply = try await serveHandoverQuery(request.handoverQuery, from: peer)
            } else {
                let create = try JSONDecoder().decode(ControlTypes.CreateVM.self, from: request.create)
                guard let spec = create.spec else { throw ControlError.badRequest("a placement request carries a complete spec") }
                if request.epoch > 0 {
                    // Only the VM's owner hands it over, and it names itself.
                    guard request.handedOverBy == peer, create.start else {
                        throw ControlError.badRequest("a handover names its sender as the owner and starts the VM")
                    }
                    let observer = controller.observer
                    await observer.reached(.placedStart("received"))
                    reply.info = try JSONEncoder().encode(try await vms.receiveHandover(spec, epoch: try wireEpoch(request.epoch, "the offered epoch"), from: peer) {
                        await observer.reached(.placedStart("stored"))
                    })
                } else {
                    let created = try await vms.create(spec)
                    let info = create.start ? try await Self.startCreated(created, on: controller.hostID, vms: vms) : created
                    reply.info = try JSONEncoder().encode(info)
                }
            }
        } catch let error as ControlError {
            reply.errorCode = error.code
            reply.errorMessage = error.message
        } catch {
            reply.errorCode = "failed"
            reply.errorMessage = "\(error)"
        }
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.vmPlaceReply = reply
        return envelope
    }
}
