import ControlAPI
import Foundation
import GRDB
import Hypervisor
import MeshCrypto
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
    /// The mesh default restart policy (`AgentConfiguration.restart`), for reports.
    let restartDefault: VMSpec.RestartPolicy
    let revocations: RevocationKeeper
    /// This domain's federation grants (Agent/Federation).
    let federation: FederationKeeper
    /// Domain key rotations (Agent/Trust).
    let domainKeys: DomainKeyKeeper
    /// The mesh's gossip keyring (Agent/Trust, Protocol.md §4.17).
    let gossipKeyring: GossipKeyringKeeper
    let rotator: KeyRotator
    /// Storage moves on this host (Agent/Storage).
    let storage: StorageMover
    /// DRS, rules and maintenance (Agent/DRS).
    let drs: DRSControlHandler
    /// Host health (Agent/Health) and schedules (Agent/Schedules).
    let health: HealthControlHandler
    let schedules: ScheduleControlHandler
    /// What `events` subscribers read (Agent/Events).
    let events: AgentEventHub
    /// Migrations into federated domains (Agent/Federation).
    let crossDomain: CrossDomainMigrator
    /// This host's network (its virtual switch's counters).
    let network: AgentNetwork
    /// Sends this host's tombstones and removal markers to the other agents of its domain (§6.10).
    let relayTombstones: @Sendable () async -> Void

    func handle(_ request: ControlRequest, _ responder: ControlResponder) async throws -> any Encodable & Sendable {
        switch request.method {
        case "status":
            return ControlTypes.Status(hostID: credentials.identity.hostID, domain: credentials.certificate.domain,
                                       listen: "\(listen)", software: Agent.software, vms: try await vms.list().count)
        case "events":
            // Streams until the client goes away (then there is nobody to answer: the empty
            // result goes nowhere) or the agent stops (the client is told).
            switch await EventStream(hub: events).serve(responder) {
            case .clientLeft: return Empty()
            case .stopping: throw ControlError.unavailable("the agent is stopping")
            }
        case "ownership":
            return try await ledger.records().map { ControlTypes.Ownership(vm: $0.vmID, owner: $0.owner, epoch: $0.epoch) }
        case "members":
            return await membership.members()
        case "gossip.keyring":
            return await gossipKeyring.info()
        case "gossip.keyring.publish":
            let p = try request.params(ControlTypes.PublishGossipKeyring.self)
            // validate() checked the base64 and that every key is 64 hex digits.
            let secrets = p.keys.compactMap { Hex.decode($0.lowercased()) }
            return ControlTypes.Text(text: try await gossipKeyring.publish(p.bytes ?? [], secrets: secrets))
        case "keys.rotate":
            return ControlTypes.Text(text: try await rotator.rotate())
        case "revocations":
            return await revocations.lists()
        case "revocations.publish":
            let p = try request.params(ControlTypes.PublishRevocations.self)
            return try await revocations.publish(p.bytes ?? []) // validate() checked the base64
        case "domain.rotations":
            return credentials.trust.domainKeys.records.map {
                ControlTypes.DomainKeyRotationInfo(domain: $0.domain, version: $0.version, oldKey: $0.oldKey.fingerprint,
                                                   newKey: $0.newKey.fingerprint, oldRetired: $0.oldRetired)
            }
        case "domain.rotation.publish":
            let p = try request.params(ControlTypes.PublishDomainKeyRotation.self)
            return ControlTypes.Text(text: try await domainKeys.publish(p.bytes ?? [])) // validate() checked the base64
        case "federation":
            return await federation.grants()
        case "federation.publish":
            let p = try request.params(ControlTypes.PublishFederationGrant.self)
            return try await federation.publish(p.bytes ?? []) // validate() checked the base64
        case "join":
            let p = try request.params(ControlTypes.Join.self)
            let address = try HostPort(parsing: p.address) // validate() parsed it already
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
            let spec: VMSpec
            switch (p.options, p.spec) {
            case (let options?, nil):
                // The agent names the VM: a fresh UUID cannot collide with a VM that migrated in.
                do { spec = try options.spec(id: UUID().uuidString.lowercased()) } catch {
                    throw ControlError.badRequest("cannot define \(options.name): \(error)")
                }
            case (nil, let given?):
                spec = given
            default:
                throw ControlError.badRequest("vm.create takes exactly one of \"options\" and \"spec\"") // validate() already refused this
            }
            let info = try await vms.create(spec)
            return p.start ? try await vms.start(info.id) : info
        case "vm.start":
            return try await vms.start(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.stop":
            return try await vms.stop(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.pause":
            return try await vms.pause(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.resume":
            return try await vms.resume(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.list":
            return try await vms.list()
        case "vm.show":
            return try await vms.show(try request.params(ControlTypes.VMReference.self).vm)
        case "vm.console":
            let p = try request.params(ControlTypes.Console.self)
            return ControlTypes.Text(text: try await vms.consoleLog(p.vm, lines: p.lines))
        case "migrate", "migrate.check":
            let p = try request.params(ControlTypes.Migrate.self)
            let vm = try await vms.find(p.vm)
            let destination: HostPort
            switch p.to {
            case .auto:
                // Ranked on the DRS view: reservations, `must` rules and maintenance count (Protocol.md §10.9).
                let choice = try await drs.placement.migrationDestination(for: try vm.decodedSpec())
                destination = choice.channel
                // Progress is for display: a client that went away does not stop the migration.
                try? await responder.progress(MigrationProgressUpdate(phase: "chose \(choice.host): \(choice.reason)", percent: 0, mbPerSecond: 0,
                                                                            dirtyMBPerSecond: 0, iteration: 0, rung: "auto"))
            case .host(let id):
                guard let member = await membership.service.members().first(where: { $0.member.id.hostID == id }) else {
                    throw ControlError.notFound("no member has host id \(id): `hostmesh members` lists them, or give the destination's channel address host:port")
                }
                guard let channel = member.member.metadata?.channelAddress else {
                    throw ControlError.unavailable("\(id) has not gossiped its channel address yet: try again in a few seconds, or give host:port")
                }
                destination = HostPort(host: channel.host, port: Int(channel.port))
            case .address(let address):
                destination = address
            }
            // `migrate --check`: the pre-flight checklist alone (Protocol.md §6.9).
            if request.method == "migrate.check" { return await coordinator.preflight(p.vm, to: destination) }
            do {
                return try await coordinator.migrate(p.vm, to: destination, settings: p.settings, keepSourceDisks: p.keepSourceDisks ?? false,
                                                    queue: !(p.noQueue ?? false)) { progress in
                    try? await responder.progress(progress) // for display, as above
                }
            } catch let error as ControlError where error.code == "failed" {
                throw await MigrationFailureReport.honest(error, vm: vm.id, vms: vms, meshDefault: restartDefault)
            }
        case "migrate.domain.check":
            // `migrate --to-domain --check`: the checklist across domains alone (Protocol.md §6.9, §6.10).
            return await crossDomain.check(try request.params(ControlTypes.MigrateAcrossDomains.self))
        case "migrate.domain":
            let p = try request.params(ControlTypes.MigrateAcrossDomains.self)
            let vm = try await vms.find(p.vm)
            do {
                return try await crossDomain.migrate(p) { progress in
                    try? await responder.progress(progress) // for display, as above
                }
            } catch let error as ControlError where error.code == "failed" {
                throw await MigrationFailureReport.honest(error, vm: vm.id, vms: vms, meshDefault: restartDefault)
            }
        case "tombstones":
            return try await vms.tombstones()
        case "tombstones.remove":
            // Domain-wide (§6.10): the removal marker is relayed at once, and in every hello after.
            let removed = try await vms.removeTombstone(try request.params(ControlTypes.VMReference.self).vm)
            await relayTombstones()
            return removed
        case "vm.move-storage":
            let p = try request.params(MoveStorageRequest.self)
            return try await storage.move(p) { job in
                let percent = job.len == 0 ? 0 : Double(job.offset) / Double(job.len) * 100
                let update = MigrationProgressUpdate(phase: job.ready ? "synchronised" : "copying", percent: percent,
                                                     mbPerSecond: 0, dirtyMBPerSecond: 0, iteration: 0, rung: "disk")
                try? await responder.progress(update) // for display: a client that went away does not stop the move
            }
        case "vm.resolve":
            let p = try request.params(ControlTypes.Resolve.self)
            let decision = Self.decision(p)
            // A placed start's hold (§10.12), unless a migration of the VM is unfinished (that is the coordinator's).
            if Self.confirmed(decision) {
                let vm: StoredVM?
                do { vm = try await vms.find(p.vm) } catch let error as ControlError where error.code == "not_found" {
                    vm = nil // not defined here: the coordinator answers for it
                }
                if let vm, try await !journal.unfinished().contains(where: { $0.vmID == vm.id }),
                   let text = try await drs.placement.resolveHandover(vm.id, decision: decision) {
                    return ControlTypes.Text(text: text)
                }
            }
            return ControlTypes.Text(text: try await coordinator.resolve(p.vm, decision: decision))
        case "switch.counters":
            let (switchCounters, overlay) = await network.virtualSwitch.counters()
            return ControlTypes.SwitchCounters(counters: switchCounters.named.merging(overlay.named) { first, _ in first })
        case "migrations":
            // Waiting ones first (next first), then the journal's.
            return await coordinator.queued() + (try await journal.history())
        case let method where DRSControlHandler.methods.contains(method):
            return try await drs.handle(request)
        case let method where HealthControlHandler.methods.contains(method):
            return try await health.handle(request)
        case let method where ScheduleControlHandler.methods.contains(method):
            return try await schedules.handle(request)
        default:
            throw ControlError.badRequest("unknown method \"\(request.method)\"")
        }
    }
}

extension ControlHandler {
    /// The operator's decision in a `vm.resolve` request; the coordinator refuses the unsafe ones
    /// whose confirmation is missing.
    static func decision(_ request: ControlTypes.Resolve) -> ResolveDecision {
        switch request.action {
        case nil: return .show
        case .retry?: return .retry
        case .resumeHere?: return .resumeHere(destinationFenced: request.destinationFenced == true)
        case .releaseHere?: return .releaseHere(destinationRunsIt: request.destinationRunsIt == true)
        }
    }

    /// False for a decision that lacks its confirmation (the coordinator refuses it, whatever the hold).
    static func confirmed(_ decision: ResolveDecision) -> Bool {
        switch decision {
        case .resumeHere(destinationFenced: false), .releaseHere(destinationRunsIt: false): false
        default: true
        }
    }
}
