import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MigrationService
import SecureChannel

/// Dispatches control API requests (Protocol.md §7) to the agent's parts.
struct ControlHandler: Sendable {
    let vms: VMManager
    let coordinator: MigrationCoordinator
    let membership: AgentMembership
    let credentials: ChannelCredentials
    let listen: HostPort
    let ledger: OwnershipLedger
    let journal: MigrationJournal

    func handle(_ request: ControlRequest, _ responder: ControlResponder) async throws -> any Encodable & Sendable {
        switch request.method {
        case "status":
            return ControlTypes.Status(hostID: credentials.identity.hostID, domain: credentials.certificate.domain,
                                       listen: "\(listen)", software: Agent.software, vms: try await vms.list().count)
        case "ownership":
            return try await ledger.records().map { ControlTypes.Ownership(vm: $0.vmID, owner: $0.owner, epoch: $0.epoch) }
        case "members":
            return await membership.members()
        case "join":
            let p = try request.params(ControlTypes.Join.self)
            let address: HostPort
            do { address = try HostPort(parsing: p.address) } catch { throw ControlError.badRequest("\(error)") }
            do {
                let known = try await membership.join(address)
                return ControlTypes.Text(text: "joined through \(address): \(known) member(s) known")
            } catch {
                throw ControlError.failed("cannot join through \(address): \(error)")
            }
        case "leave":
            let spread = await membership.service.leave()
            return ControlTypes.Text(text: spread ? "left the mesh (every member was told)" : "left the mesh (the leave may not have reached every member before the timeout)")
        case "vm.create":
            let p = try request.params(ControlTypes.CreateVM.self)
            let info = try await vms.create(p.spec)
            return p.start ? try await vms.start(info.id) : info
        case "vm.start":
            return try await vms.start(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.stop":
            return try await vms.stop(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.list":
            return try await vms.list()
        case "vm.show":
            return try await vms.show(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.console":
            let p = try request.params(ControlTypes.Console.self)
            return ControlTypes.Text(text: try await vms.consoleLog(p.vm, lines: p.lines))
        case "migrate":
            let p = try request.params(ControlTypes.Migrate.self)
            let vm = try await vms.find(p.vm)
            // Disks are not copied (yet): the destination must see the same image at the same path.
            if let local = try vm.decodedSpec().disks.first(where: { !$0.shared }) {
                throw ControlError.conflict("\(vm.name) has a disk that is not on shared storage (\(local.path)), and hostmesh does not copy disks yet: "
                    + "put the image on storage every host mounts at the same path and define the VM with the disk marked shared")
            }
            let destination: HostPort
            if p.to == "auto" {
                let members = await membership.service.members().map(\.member)
                switch DestinationChooser.choose(from: members, excluding: credentials.identity.hostID, domain: credentials.certificate.domain,
                                                 memoryMiB: try vm.decodedSpec().memoryMiB) {
                case .success(let choice):
                    destination = choice.channel
                    try? await responder.progress(MigrationProgressUpdate(phase: "chose \(choice.host)", percent: 0, mbPerSecond: 0,
                                                                                dirtyMBPerSecond: 0, iteration: 0, rung: "auto"))
                case .failure(let error):
                    throw ControlError.unavailable("\(error)")
                }
            } else if let member = await membership.service.members().first(where: { $0.member.id.hostID == p.to }),
                      let channel = member.member.metadata?.channelAddress {
                destination = HostPort(host: channel.host, port: Int(channel.port)) // a host id
            } else {
                do { destination = try HostPort(parsing: p.to) } catch {
                    throw ControlError.badRequest("\(p.to) is neither a member's host id nor host:port (members: `hostmesh members`)")
                }
            }
            return try await coordinator.migrate(p.vm, to: destination, settings: p.settings) { progress in
                try? await responder.progress(progress)
            }
        case "vm.resolve":
            let p = try request.params(ControlTypes.Resolve.self)
            return ControlTypes.Text(text: try await coordinator.resolve(p.vm, decision: try Self.decision(p)))
        case "migrations":
            return try await journal.history()
        default:
            throw ControlError.badRequest("unknown method \"\(request.method)\"")
        }
    }
}

extension ControlHandler {
    /// The operator's decision in a `vm.resolve` request; the coordinator refuses the unsafe ones
    /// whose confirmation is missing.
    static func decision(_ request: ControlTypes.Resolve) throws -> ResolveDecision {
        switch request.action {
        case nil: return .show
        case "retry"?: return .retry
        case "resume-here"?: return .resumeHere(destinationFenced: request.destinationFenced == true)
        case "release-here"?: return .releaseHere(destinationRunsIt: request.destinationRunsIt == true)
        case let other?:
            throw ControlError.badRequest("unknown resolve action \"\(other)\": use retry, resume-here (with destinationFenced) or release-here (with destinationRunsIt)")
        }
    }
}
