import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import MeshWire
import MigrationService
import SecureChannel

/// `migrate VM --to-domain NAME --via HOST:PORT [--to HOST]` on the source (Protocol.md §6.10):
/// checks the VM against this domain's own grant for the receiving domain, asks a host of that
/// domain where the VM may go, then hands the coordinator the host offered, to run the same
/// journaled handover as inside a domain. Every refusal comes before anything moves.
struct CrossDomainMigrator: Sendable {
    let coordinator: MigrationCoordinator
    let vms: VMManager
    let credentials: ChannelCredentials
    /// Links this host's switch with the destination's for stretched networks (§8.9).
    let linker: StretchedOverlayLinker
    let logger: Logger

    private var domain: String { credentials.certificate.domain }

    func migrate(_ request: ControlTypes.MigrateAcrossDomains,
                 progress: @escaping @Sendable (MigrationProgressUpdate) async -> Void) async throws -> MigrationReport {
        guard request.domain != domain else {
            throw ControlError.badRequest("\(request.domain) is this host's own domain: migrate inside it with --to HOST")
        }
        let vm = try await vms.find(request.vm)
        let spec = try vm.decodedSpec()
        // Before anything is offered or stretched (taking the VM checks it again).
        if let process = await vms.process(vm.id) {
            try await vms.refusePaused(vm, process, "a migration would run it at its destination (nothing moved)")
        }
        let now = Int64(Date().timeIntervalSince1970)
        let grant = credentials.trust.federation.current.grant(of: domain, for: request.domain)
        let candidate = FederationAdmission.Candidate(name: spec.name, labels: Set(spec.labels ?? []), networks: spec.nics.compactMap(\.network),
                                                      localDisks: spec.disks.filter { !$0.shared }.count,
                                                      acceptNetworkChange: request.acceptNetworkChange ?? false)
        do {
            _ = try FederationAdmission.check(candidate, grant: grant, domain: domain, peer: request.domain,
                                              peerKey: grant?.peerDomainKey ?? credentials.identity.signingKey.publicKey,
                                              direction: .outgoing, now: now, skew: credentials.trust.clockSkewSeconds)
        } catch {
            throw ControlError.conflict("\(error) (nothing moved; \(spec.name) runs here)")
        }
        guard let grant else { throw ControlError.conflict("no grant") } // refused above (`noGrant`)
        let via = try HostPort(parsing: request.via) // validate() parsed it already
        let offer = try await ask(via, grant: grant, spec: spec, epoch: vm.epoch, request: request)
        let address = offer.destinationAddress.isEmpty ? via : try HostPort(parsing: offer.destinationAddress)
        let networks = spec.nics.compactMap(\.network)
        let stretched = FederationAdmission.isStretched(networks, grant: grant, direction: .outgoing)
        if stretched {
            // The two switches carry the segment between them before anything moves (§8.9).
            do { try await linker.linkTo(offer.destination, at: address, grant: grant) } catch {
                throw ControlError.conflict("cannot stretch \(networks.joined(separator: ", ")) to \(offer.destination)@\(request.domain): \(error) (nothing moved; \(spec.name) runs here)")
            }
        }
        await progress(MigrationProgressUpdate(phase: "offered \(offer.destination)@\(request.domain)", percent: 0, mbPerSecond: 0,
                                               dirtyMBPerSecond: 0, iteration: 0, rung: "cross-domain"))
        logger.info("migrating into another domain", metadata: ["vm.name": "\(spec.name)", "mesh.peer_domain": "\(request.domain)",
                                                                "mesh.destination": "\(offer.destination)", "mesh.address": "\(address)"])
        return try await coordinator.migrate(vm.id, to: address, settings: request.settings, keepSourceDisks: request.keepSourceDisks ?? false,
                                             crossDomain: CrossDomainTarget(anchor: grant.peerAnchor, host: offer.destination, stretched: stretched),
                                             progress: progress)
    }

    /// The pre-flight checklist across domains (`migrate --to-domain --check`, Protocol.md §6.9,
    /// §6.10): `grant` (this domain's own grant lets the VM out), `offer` (the receiving domain's
    /// grant, ids, MACs, tombstones and placement, as its answer to the request), then the
    /// checklist of §6.9 against the host offered, over a cross-domain channel. Nothing is
    /// reserved, linked or moved; what cannot be checked is a failed item.
    func check(_ request: ControlTypes.MigrateAcrossDomains) async -> PreflightReport {
        var items: [PreflightReport.Item] = []
        let destination = "domain \(request.domain) via \(request.via)"
        func report() -> PreflightReport { PreflightReport(vm: request.vm, destination: destination, items: items) }
        guard request.domain != domain else {
            items.append(.init(name: "grant", ok: false, detail: "\(request.domain) is this host's own domain", fix: "migrate inside it with --to HOST"))
            return report()
        }
        let vm: StoredVM, spec: VMSpec
        do {
            vm = try await vms.find(request.vm)
            spec = try vm.decodedSpec()
        } catch {
            items.append(.init(name: "vm", ok: false, detail: "\(error)", fix: "`hostmesh vm list` shows this host's VMs"))
            return report()
        }
        let grant = credentials.trust.federation.current.grant(of: domain, for: request.domain)
        let networks = spec.nics.compactMap(\.network)
        let candidate = FederationAdmission.Candidate(name: spec.name, labels: Set(spec.labels ?? []), networks: networks,
                                                      localDisks: spec.disks.filter { !$0.shared }.count,
                                                      acceptNetworkChange: request.acceptNetworkChange ?? false)
        do {
            let mapped = try FederationAdmission.check(candidate, grant: grant, domain: domain, peer: request.domain,
                                                       peerKey: grant?.peerDomainKey ?? credentials.identity.signingKey.publicKey,
                                                       direction: .outgoing, now: Int64(Date().timeIntervalSince1970), skew: credentials.trust.clockSkewSeconds)
            let stretched = FederationAdmission.isStretched(networks, grant: grant, direction: .outgoing)
            let how = networks.isEmpty ? "no network" : stretched ? "networks \(networks.joined(separator: ", ")) stretched (its peers here keep it)"
                : "networks \(networks.joined(separator: ", ")) → \(mapped.joined(separator: ", ")) (not stretched: its peers here lose it, accepted)"
            items.append(.init(name: "grant", ok: true, detail: "domain \(domain)'s grant lets \(spec.name) out to \(request.domain): \(how)"))
        } catch {
            items.append(.init(name: "grant", ok: false, detail: "\(error)", fix: "see the detail: this domain's grant for \(request.domain), or the migrate flags"))
            return report()
        }
        guard let grant, let via = try? HostPort(parsing: request.via) else { return report() } // both checked above (grant) or by validate() (via)
        let offer: Hostmesh_V1_XdomainMigrationOffer
        do { offer = try await ask(via, grant: grant, spec: spec, epoch: vm.epoch, request: request) } catch {
            items.append(.init(name: "offer", ok: false, detail: "\(error)", fix: "see the detail: domain \(request.domain)'s grant for \(domain), or --to"))
            return report()
        }
        items.append(.init(name: "offer", ok: true, detail: "domain \(request.domain) would take \(spec.name) on \(offer.destination) (networks there: \(offer.networks.isEmpty ? "none" : offer.networks.joined(separator: ", ")))"))
        let address: HostPort
        do { address = offer.destinationAddress.isEmpty ? via : try HostPort(parsing: offer.destinationAddress) } catch {
            items.append(.init(name: "destination", ok: false, detail: "domain \(request.domain) offered an address that does not parse: \(error)",
                               fix: "check the channel address of \(offer.destination) there"))
            return report()
        }
        let target = CrossDomainTarget(anchor: grant.peerAnchor, host: offer.destination)
        let checklist = await coordinator.preflight(vm.id, to: address, crossDomain: target)
        items += checklist.items
        return PreflightReport(vm: request.vm, destination: "\(offer.destination)@\(request.domain) (\(address))", items: items)
    }

    /// Asks the host at `via` (of the grant's peer domain) where the VM may come in.
    private func ask(_ via: HostPort, grant: FederationGrant, spec: VMSpec, epoch: Int64,
                     request: ControlTypes.MigrateAcrossDomains) async throws -> Hostmesh_V1_XdomainMigrationOffer {
        var configuration = SecureChannelConfiguration(credentials: credentials, handshakeTimeout: .seconds(5))
        configuration.policy.purpose = FederationGrant.migrationPurpose
        configuration.policy.targetDomain = grant.peerAnchor
        configuration.policy.requiredDomain = grant.peerDomain
        var envelope = Hostmesh_V1_AgentEnvelope()
        envelope.xdomainMigrationRequest.vmSpecJson = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        envelope.xdomainMigrationRequest.epoch = UInt64(epoch)
        envelope.xdomainMigrationRequest.destination = request.to ?? ""
        envelope.xdomainMigrationRequest.acceptNetworkChange = request.acceptNetworkChange ?? false
        let answer: Hostmesh_V1_AgentEnvelope?
        do {
            let connection = try await SecureConnection.connect(host: via.host, port: via.port, configuration: configuration, logger: logger)
            answer = try await connection.request(envelope)
        } catch {
            throw ControlError.failed("cannot ask domain \(grant.peerDomain) at \(via): \(error) (nothing moved; \(spec.name) runs here)")
        }
        guard case .xdomainMigrationOffer(let offer)? = answer?.body else {
            throw ControlError.failed("\(via) did not answer the cross-domain migration request (nothing moved)")
        }
        guard offer.error.isEmpty else {
            throw ControlError.conflict("domain \(grant.peerDomain) refuses \(spec.name): \(offer.error) (nothing moved; \(spec.name) runs here)")
        }
        do { try IdentityName.validate(offer.destination) } catch {
            throw ControlError.failed("domain \(grant.peerDomain) offered an invalid host id: \(error) (nothing moved)")
        }
        return offer
    }
}
