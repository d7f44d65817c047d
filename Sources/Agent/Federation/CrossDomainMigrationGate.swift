import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshCrypto
import MeshIdentity
import Membership
import MeshWire
import MigrationService
import SecureChannel

/// Answers a `cross-domain-migration` channel (Protocol.md §6.10): a host of a federated domain
/// asks where a VM may come in (`xdomain_migration_request` → `xdomain_migration_offer`), then
/// runs the migration's control messages on a channel of the same purpose to the host offered.
/// Every prepare is checked again against this domain's own grant (labels, networks mapped, disks
/// only into its storage directory) and against the VMs and tombstones here (id and MACs), and its
/// spec is mapped to this domain's network names before the coordinator sees it. The peer is
/// named `host@domain` throughout (`PeerName`), so its host id may equal one of this domain's.
struct CrossDomainMigrationGate: Sendable {
    let coordinator: MigrationCoordinator
    let membership: AgentMembership
    let vms: VMManager
    let credentials: ChannelCredentials
    /// Links this host's switch with the source's for stretched networks (§8.9).
    let linker: StretchedOverlayLinker
    let logger: Logger

    private var domain: String { credentials.certificate.domain }

    /// Serves `connection` until the peer closes it or a refusal does; then the migrations
    /// prepared on it and not committed are discarded, as on a control channel (§6.4).
    func serve(_ connection: SecureConnection) async {
        let peer = connection.peer
        let name = PeerName.of(peer, localDomain: domain)
        var migrations = Set<String>()
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                do {
                    var reader = EnvelopeReader(inbound)
                    while let envelope = try await reader.next() {
                        switch envelope.body {
                        case .xdomainMigrationRequest(let request):
                            var reply = Hostmesh_V1_AgentEnvelope()
                            reply.xdomainMigrationOffer = await offer(request, from: peer)
                            try await outbound.write(EnvelopeWriter.frame(reply))
                        case .migrationPrepare(let prepare):
                            migrations.insert(prepare.migrationID)
                            try await outbound.write(EnvelopeWriter.frame(await admit(prepare, from: peer)))
                        case .migrationCommit, .migrationAbort, .migrationQuery:
                            if let reply = await coordinator.handle(envelope.body!, from: name) {
                                try await outbound.write(EnvelopeWriter.frame(reply))
                            }
                        case .migrationCheck(let check):
                            try await outbound.write(EnvelopeWriter.frame(await self.check(check, from: peer, name: name)))
                        case .xdomainOverlayHello(let hello):
                            var reply = Hostmesh_V1_AgentEnvelope()
                            reply.xdomainOverlayHello = await overlayHello(hello, from: peer, on: connection)
                            try await outbound.write(EnvelopeWriter.frame(reply))
                        case .note(let note):
                            logger.info("cross-domain note received", metadata: ["mesh.peer": "\(name)", "note": "\(note.text)"])
                        default:
                            throw SecureChannelError(.protocolViolation, "a cross-domain-migration channel carries no \(CrossDomainGate.name(envelope.body)) (Protocol.md §5.2)")
                        }
                    }
                } catch {
                    if let refusal = PeerConnectionHandler.refusal(error) {
                        connection.channel.channel.triggerUserOutboundEvent(SecureChannelCloseRequest(refusal), promise: nil)
                    }
                    throw error
                }
            }
        } catch {
            let reason = await connection.failureReason().map { "\($0)" } ?? "\(error)"
            logger.warning("cross-domain migration channel ended", metadata: ["mesh.peer": "\(name)", "mesh.reason": "\(reason)"])
        }
        await coordinator.channelEnded(migrations: migrations, from: name)
    }

    /// The pre-flight checklist from a host of another domain (§6.9, §6.10): the `admission` item
    /// (this domain's grant, ids, MACs, tombstones), then the destination's items of §6.9 for the
    /// spec mapped to this domain's networks. Reserves nothing.
    private func check(_ check: Hostmesh_V1_MigrationCheck, from peer: PeerIdentity, name: String) async -> Hostmesh_V1_AgentEnvelope {
        var reply = Hostmesh_V1_AgentEnvelope()
        var admission = Hostmesh_V1_CheckItem()
        admission.name = "admission"
        let spec: VMSpec
        do { spec = try JSONDecoder().decode(VMSpec.self, from: Data(check.vmSpecJson.utf8)) } catch {
            admission.detail = "\(credentials.identity.hostID) cannot read the VM's spec: \(error)"
            admission.fix = "run the same hostmesh version in both domains"
            reply.migrationCheckResult.items = [admission]
            return reply
        }
        switch await self.check(spec, from: peer, epoch: nil) {
        case .failure(let refusal):
            admission.detail = "\(credentials.identity.hostID)@\(domain): \(refusal.text)"
            admission.fix = "see the detail"
            reply.migrationCheckResult.items = [admission]
            return reply
        case .success(let (local, _)):
            admission.ok = true
            admission.detail = "domain \(domain)'s grant lets \(spec.name) in; no VM or tombstone on \(credentials.identity.hostID) holds its id or MACs"
            var mapped = check
            do { mapped.vmSpecJson = String(decoding: try JSONEncoder().encode(local), as: UTF8.self) } catch {
                admission.ok = false
                admission.detail = "cannot encode the mapped spec: \(error)"
                reply.migrationCheckResult.items = [admission]
                return reply
            }
            reply = await coordinator.checkIncoming(mapped, from: name)
            reply.migrationCheckResult.items.insert(admission, at: 0)
            return reply
        }
    }

    /// A source's overlay hello (§8.9): this host's own, and the pair's overlay keyed from this
    /// channel, when this domain's grant for the source's domain stretches a network; else an
    /// answer carrying only the reason.
    private func overlayHello(_ hello: Hostmesh_V1_XdomainOverlayHello, from peer: PeerIdentity, on connection: SecureConnection) async -> Hostmesh_V1_XdomainOverlayHello {
        guard let grant = credentials.trust.federation.current.grant(of: domain, for: peer.domain),
              grant.refusal(at: Int64(Date().timeIntervalSince1970), skew: credentials.trust.clockSkewSeconds) == nil else {
            var refusal = Hostmesh_V1_XdomainOverlayHello()
            refusal.error = "domain \(domain) holds no grant in force for domain \(peer.domain)"
            return refusal
        }
        var mine = await linker.hello(for: grant)
        guard mine.error.isEmpty else { return mine }
        do { try await linker.link(hello, from: peer.hostID, grant: grant, on: connection) } catch {
            logger.warning("stretched segment refused", metadata: ["mesh.peer": "\(PeerName.of(peer, localDomain: domain))", "error": "\(error)"])
            mine = Hostmesh_V1_XdomainOverlayHello()
            mine.error = "\(error)"
        }
        return mine
    }

    // MARK: - Admission (§6.10)

    /// `spec` checked against this domain's grant for the peer's domain and the VMs and tombstones
    /// here (the VM's `epoch` at the source, nil when the message carries none), with its NICs on
    /// this domain's networks; or the refusal, naming the cause and the fix.
    private func check(_ spec: VMSpec, from peer: PeerIdentity, epoch: UInt64?) async -> Result<(VMSpec, FederationGrant), Refusal> {
        let now = Int64(Date().timeIntervalSince1970)
        let grant = credentials.trust.federation.current.grant(of: domain, for: peer.domain)
        let peerKey: SigningPublicKey
        do { peerKey = try peer.certificate.issuer?.domainKey ?? peer.certificate.issuerKey() } catch {
            return .failure(Refusal("the certificate of \(peer.hostID) names no key this host can read (\(error))"))
        }
        let networked = spec.nics.filter { $0.network != nil }
        let candidate = FederationAdmission.Candidate(name: spec.name, labels: Set(spec.labels ?? []), networks: networked.compactMap(\.network),
                                                      localDisks: spec.disks.filter { !$0.shared }.count)
        let mapped: [String]
        do {
            mapped = try FederationAdmission.check(candidate, grant: grant, domain: domain, peer: peer.domain, peerKey: peerKey,
                                                   direction: .incoming, now: now, skew: credentials.trust.clockSkewSeconds)
        } catch {
            return .failure(Refusal("\(error)"))
        }
        guard let grant else { return .failure(Refusal("no grant")) } // checked above: `noGrant`
        var sourceEpoch: Int64?
        if let epoch {
            guard let sane = Int64(exactly: epoch), sane != Int64.max else { return .failure(Refusal("malformed request: epoch \(epoch) is not a sane value")) }
            sourceEpoch = sane
        }
        do {
            if let conflict = try await vms.identityConflict(spec, from: peer.domain, epoch: sourceEpoch) { return .failure(Refusal(conflict)) }
        } catch {
            // Fail closed: a duplicate MAC or id cannot be ruled out.
            return .failure(Refusal("\(credentials.identity.hostID) cannot read its VMs (\(error)), so it cannot rule out a MAC or id in use; fix its store and retry"))
        }
        var local = spec
        var next = mapped.makeIterator()
        for index in local.nics.indices where local.nics[index].network != nil {
            local.nics[index].network = next.next()
        }
        return .success((local, grant))
    }

    /// A refusal's text.
    struct Refusal: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    /// The answer to a source asking where `request`'s VM may come in: this domain's placement
    /// chooses unless the request names a host, which must be an alive member of this domain
    /// that placement would accept.
    private func offer(_ request: Hostmesh_V1_XdomainMigrationRequest, from peer: PeerIdentity) async -> Hostmesh_V1_XdomainMigrationOffer {
        var offer = Hostmesh_V1_XdomainMigrationOffer()
        let spec: VMSpec
        do { spec = try JSONDecoder().decode(VMSpec.self, from: Data(request.vmSpecJson.utf8)) } catch {
            offer.error = "malformed request: the VM spec does not decode (\(error))"
            return offer
        }
        let local: VMSpec
        switch await check(spec, from: peer, epoch: request.epoch) {
        case .success(let (mapped, grant)):
            local = mapped
            // This side's consent rule too (§2.9): a network it does not stretch loses the VM's peers.
            let networks = spec.nics.compactMap(\.network)
            if !networks.isEmpty, !request.acceptNetworkChange, !FederationAdmission.isStretched(networks, grant: grant, direction: .incoming) {
                offer.error = "domain \(domain) maps \(networks.joined(separator: ", ")) without stretching it: the VM's peers lose it at layer 2; migrate with --accept-network-change if that is what you want"
                logRefusal(spec, peer, offer.error)
                return offer
            }
        case .failure(let refusal):
            offer.error = refusal.text
            logRefusal(spec, peer, refusal.text)
            return offer
        }
        let members = await membership.service.members().map(\.member)
        let candidates: [Member]
        if request.destination.isEmpty {
            candidates = members
        } else {
            guard let named = members.first(where: { $0.id.hostID == request.destination }) else {
                offer.error = "host \(request.destination) is not a member of domain \(domain): name a host of domain \(domain) (`hostmesh members` there), or leave --to out and let its placement choose"
                logRefusal(spec, peer, offer.error)
                return offer
            }
            candidates = [named]
        }
        switch DestinationChooser.choose(from: candidates, excluding: "", domain: domain, memoryMiB: local.memoryMiB) {
        case .success(let choice):
            offer.destination = choice.host
            offer.destinationAddress = choice.host == credentials.identity.hostID ? "" : "\(choice.channel)"
            offer.networks = local.nics.compactMap(\.network)
            logger.info("offered a place to a VM from another domain", metadata: [
                "vm.name": "\(spec.name)", "mesh.peer": "\(PeerName.of(peer, localDomain: domain))", "mesh.destination": "\(choice.host)"])
        case .failure(let error):
            offer.error = "domain \(domain) has no host for \(spec.name): \(error)"
            logRefusal(spec, peer, offer.error)
        }
        return offer
    }

    /// A prepare from a host of another domain: checked and mapped, then the coordinator's.
    private func admit(_ prepare: Hostmesh_V1_MigrationPrepare, from peer: PeerIdentity) async -> Hostmesh_V1_AgentEnvelope {
        var refused = Hostmesh_V1_AgentEnvelope()
        refused.migrationPrepared.migrationID = prepare.migrationID
        let spec: VMSpec
        do { spec = try JSONDecoder().decode(VMSpec.self, from: Data(prepare.vmSpecJson.utf8)) } catch {
            refused.migrationPrepared.error = "malformed request: the VM spec does not decode (\(error))"
            return refused
        }
        switch await check(spec, from: peer, epoch: prepare.epoch) {
        case .failure(let refusal):
            logRefusal(spec, peer, refusal.text)
            refused.migrationPrepared.error = refusal.text
            return refused
        case .success(let (local, grant)):
            var mapped = prepare
            do { mapped.vmSpecJson = String(decoding: try JSONEncoder().encode(local), as: UTF8.self) } catch {
                refused.migrationPrepared.error = "cannot encode the mapped spec: \(error)"
                return refused
            }
            // Disks from another domain go only where the grant says (§2.9 `storage_directory`).
            let storage = grant.body.storageDirectory.isEmpty ? vms.storageRoot : grant.body.storageDirectory
            if !prepare.disks.isEmpty {
                do { try FileManager.default.createDirectory(atPath: storage, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                    refused.migrationPrepared.error = "cannot create the grant's storage directory \(storage): \(error)"
                    return refused
                }
            }
            // On stretched networks the port moves with the VM, as inside a domain (§8.9).
            let stretched = FederationAdmission.isStretched(spec.nics.compactMap(\.network), grant: grant, direction: .incoming)
            return await coordinator.prepareAcrossDomains(mapped, from: PeerName.of(peer, localDomain: domain), storageRoot: storage,
                                                          freshPorts: !stretched || prepare.portStates.isEmpty)
        }
    }

    private func logRefusal(_ spec: VMSpec, _ peer: PeerIdentity, _ reason: String) {
        logger.warning("migration from another domain refused", metadata: [
            "vm.name": "\(spec.name)", "mesh.peer": "\(PeerName.of(peer, localDomain: domain))", "error": "\(reason)"])
    }
}
