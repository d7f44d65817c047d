import Agent
import ControlAPI
import Foundation
import Hypervisor
import MeshIdentity
import Testing

/// Migration into another, federated domain and back (Protocol.md §6.10), with real agents, a
/// real TCG guest writing its disk log to a local disk, and a host of each domain called
/// `node-1`: the two domains keep their own ids apart (`host@domain`), agree on owner and epoch,
/// and the source keeps a tombstone. Every refusal comes before anything moves.
extension MigrationEndToEndTests {
    /// Both domains' agents, with grants published on each side as the test says.
    struct Federation {
        let mesh: TestMesh
        let prod: DomainAuthority
        var lab: AgentProcess
        let prodHost: AgentProcess
        let now = Int64(Date().timeIntervalSince1970)

        /// Publishes `terms` signed by `authority` on `agent`, after `previous` (the next version).
        @discardableResult
        func grant(_ authority: DomainAuthority, on agent: AgentProcess, _ terms: FederationTerms, after previous: FederationGrant? = nil) async throws -> FederationGrant {
            let grant = try authority.federate(terms, after: previous, now: now)
            _ = try await agent.control.call("federation.publish", ControlTypes.PublishFederationGrant(grant: grant.serialized),
                                             as: ControlTypes.FederationGrantInfo.self)
            return grant
        }

        func terms(for peer: DomainAuthority, labels: [String]? = nil, networks: [FederationTerms.NetworkMapping] = [.init(peerNetwork: "default", localNetwork: "default")],
                   storage: String? = nil, notAfter: Int64? = nil) -> FederationTerms {
            FederationTerms(peer: peer.trustAnchor, allVMs: labels == nil, labels: labels ?? [], networks: networks, storageDirectory: storage,
                            notBefore: now - 3600, notAfter: notAfter ?? now + 3600)
        }

        /// Asks `from` to move `vm` into `domain` through `via`.
        func move(_ vm: String, from: AgentProcess, into domain: String, via: AgentProcess, to host: String? = nil,
                  acceptNetworkChange: Bool = true) async throws -> MigrationReport {
            try await from.control.call("migrate.domain", ControlTypes.MigrateAcrossDomains(
                vm: vm, domain: domain, via: via.address, to: host, settings: MigrationSettings(), acceptNetworkChange: acceptNetworkChange),
                as: MigrationReport.self)
        }
    }

    /// A lab agent `node-1` and a prod agent also called `node-1`.
    func federation(lab labEnvironment: [String: String] = [:], prod prodEnvironment: [String: String] = [:],
                    prodArguments: [String] = []) async throws -> Federation {
        let mesh = try TestMesh()
        let prod = try DomainAuthority(name: "prod")
        let lab = try await mesh.start("node-1", environment: labEnvironment)
        let prodHost = try await mesh.start("node-1", of: prod, directory: "prod-node-1", arguments: prodArguments, environment: prodEnvironment)
        return Federation(mesh: mesh, prod: prod, lab: lab, prodHost: prodHost)
    }

    /// A heartbeat-and-disk-log guest with a NIC on `default`, a MAC and labels.
    func crossingSpec(_ name: String, mac: String, labels: [String]?, disk: String? = nil) -> VMSpec {
        var vm = spec(name, work: disk == nil ? "heartbeat" : "heartbeat,disk")
        vm.nics = [VMSpec.NIC(id: "net0", mac: mac, attachment: .none, network: "default", addresses: ["10.77.0.9/32"])]
        vm.labels = labels
        if let disk { vm.disks = [VMSpec.Disk(path: disk, format: .raw, shared: false)] }
        return vm
    }

    @Test func aGuestWithALocalDiskMovesIntoAFederatedDomainAndBack() async throws {
        let f = try await federation()
        defer { f.mesh.tearDown() }
        let labIncoming = f.mesh.root + "/lab-incoming", prodIncoming = f.mesh.root + "/prod-incoming"
        try await f.grant(f.mesh.domain, on: f.lab, f.terms(for: f.prod, storage: labIncoming))
        try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain, labels: ["web"], storage: prodIncoming))

        let image = f.mesh.root + "/lab-local/disk.raw"
        try sparseImage(image, mib: 16)
        let vm = crossingSpec("traveller", mac: "52:54:00:aa:00:01", labels: ["web"], disk: image)
        _ = try await f.lab.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, _) = try await heartbeat(f.lab, "traveller", after: 1)
        let first = try await diskRecord(f.lab, "traveller", boot: boot, above: 10)
        let blocks = try #require(DiskLog.lastRecord(try await console(f.lab, "traveller"))).blocks

        // lab → prod: prod's node-1 runs it at epoch 2 on an image in its grant's directory.
        let there = try await f.move("traveller", from: f.lab, into: "prod", via: f.prodHost)
        #expect(there.disks?.first?.copiedBytes ?? 0 > 0)
        print("CrossDomainMigrationTests: lab → prod total \(there.totalMs) ms, downtime \(there.downtimeMs) ms")
        let inProd = try await f.prodHost.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(inProd.map(\.name) == ["traveller"] && inProd.first?.state == "running" && inProd.first?.epoch == 2, "\(inProd)")
        let onProd = try await diskPath(f.prodHost, "traveller")
        #expect(onProd.hasPrefix(prodIncoming + "/"), "\(onProd)")
        #expect(!FileManager.default.fileExists(atPath: image), "the source's image should be deleted after the handover")
        #expect(try await f.lab.control.call("vm.list", Empty(), as: [VMInfo].self).isEmpty)
        let (_, beatInProd) = try await heartbeat(f.prodHost, "traveller")
        let second = try await diskRecord(f.prodHost, "traveller", boot: boot, above: first + 10)

        // Both domains agree: lab's record and tombstone name prod's node-1 as node-1@prod, epoch 2.
        let labOwnership = try await f.lab.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
        #expect(labOwnership.contains(ControlTypes.Ownership(vm: vm.id, owner: "node-1@prod", epoch: 2)), "\(labOwnership)")
        let tombstones = try await f.lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
        #expect(tombstones.map(\.vm) == [vm.id] && tombstones.first?.macs == ["52:54:00:aa:00:01"] && tombstones.first?.domain == "prod"
                && tombstones.first?.epoch == 2, "\(tombstones)")
        // Its MAC and id are not reused in lab while it is away.
        var reuse = spec("impostor")
        reuse.nics = [VMSpec.NIC(id: "net0", mac: "52:54:00:aa:00:01", attachment: .none, network: "default")]
        do {
            _ = try await f.lab.control.call("vm.create", ControlTypes.CreateVM(spec: reuse, start: false), as: VMInfo.self)
            Issue.record("a VM reused the MAC of a VM that left for another domain")
        } catch let error as ControlError {
            #expect(error.message.contains("traveller") && error.message.contains("node-1@prod"), "\(error.message)")
        }

        // prod → lab: the same way back, epoch 3; lab's tombstone goes, prod keeps one.
        let back = try await f.move("traveller", from: f.prodHost, into: "lab", via: f.lab)
        print("CrossDomainMigrationTests: prod → lab total \(back.totalMs) ms, downtime \(back.downtimeMs) ms")
        let inLab = try await f.lab.control.call("vm.list", Empty(), as: [VMInfo].self)
        #expect(inLab.map(\.name) == ["traveller"] && inLab.first?.epoch == 3, "\(inLab)")
        let onLab = try await diskPath(f.lab, "traveller")
        #expect(onLab.hasPrefix(labIncoming + "/"), "\(onLab)")
        let (bootInLab, beatInLab) = try await heartbeat(f.lab, "traveller", after: beatInProd)
        #expect(bootInLab == boot && beatInLab > beatInProd, "the heartbeat went back or the guest rebooted")
        _ = try await diskRecord(f.lab, "traveller", boot: boot, above: second + 10)
        #expect(try await f.lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self).isEmpty)
        let prodTombstones = try await f.prodHost.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
        #expect(prodTombstones.map(\.owner) == ["node-1@lab"] && prodTombstones.first?.epoch == 3, "\(prodTombstones)")
        let prodOwnership = try await f.prodHost.control.call("ownership", Empty(), as: [ControlTypes.Ownership].self)
        #expect(prodOwnership.contains(ControlTypes.Ownership(vm: vm.id, owner: "node-1@lab", epoch: 3)), "\(prodOwnership)")

        // Nothing in flight, then the final image holds every acknowledged record.
        _ = try await f.lab.control.call("vm.stop", ControlTypes.VMReference(vm: "traveller"), as: VMInfo.self)
        let last = try #require(DiskLog.records(try await console(f.lab, "traveller"), boot: String(boot.prefix(8))).last)
        let damaged = try DiskLog.damagedRecords(image: onLab, boot: String(boot.prefix(8)), upTo: last, blocks: blocks)
        #expect(last > second && damaged.isEmpty, "acknowledged records missing or torn on the final image (up to \(last)): \(damaged.prefix(10))")
    }

    @Test func crossDomainMigrationsAreRefusedBeforeAnythingMoves() async throws {
        let f = try await federation()
        defer { f.mesh.tearDown() }
        // Defined, not started: every refusal below comes before the VM would be taken.
        let vm = crossingSpec("stayer", mac: "52:54:00:aa:00:02", labels: ["db"])
        _ = try await f.lab.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: false), as: VMInfo.self)
        func refused(_ why: String, to host: String? = nil, accept: Bool = true, _ expected: String...) async throws {
            do {
                _ = try await f.move("stayer", from: f.lab, into: "prod", via: f.prodHost, to: host, acceptNetworkChange: accept)
                Issue.record("\(why): the migration was not refused")
            } catch let error as ControlError {
                for text in expected { #expect(error.message.contains(text), "\(why): \(error.message)") }
                print("CrossDomainMigrationTests refusal, \(why): \(error.message)")
            }
            #expect(try await f.lab.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name) == ["stayer"], "\(why)")
            #expect(try await f.prodHost.control.call("vm.list", Empty(), as: [VMInfo].self).map(\.name).filter { $0 == "stayer" }.isEmpty, "\(why)")
        }

        try await refused("no grant", "holds no federation grant for domain prod")
        func check() async throws -> PreflightReport {
            try await f.lab.control.call("migrate.domain.check", ControlTypes.MigrateAcrossDomains(
                vm: "stayer", domain: "prod", via: f.prodHost.address, settings: MigrationSettings(), acceptNetworkChange: true), as: PreflightReport.self)
        }
        let noGrant = try await check()
        #expect(noGrant.items.map(\.name) == ["grant"] && noGrant.items.first?.ok == false, "\(noGrant.lines)")
        // One-sided: lab grants prod, prod does not grant lab (its host does not know lab's key).
        let labGrant = try await f.grant(f.mesh.domain, on: f.lab, f.terms(for: f.prod, notAfter: f.now - 600))
        try await refused("expired grant", "expired")
        let current = try await f.grant(f.mesh.domain, on: f.lab, f.terms(for: f.prod), after: labGrant)
        try await refused("one-sided grant", "cannot ask domain prod")
        // Both grant; prod maps only its network "front" and lets in VMs labelled web.
        var prodGrant = try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain, labels: ["web"],
                                                                          networks: [.init(peerNetwork: "front", localNetwork: "default")]))
        try await refused("network change not accepted", accept: false, "--accept-network-change")
        try await refused("label not allowed", "stayer", "labels: db", "label the VM or widen the grant")
        prodGrant = try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain, networks: [.init(peerNetwork: "front", localNetwork: "default")]),
                                      after: prodGrant)
        try await refused("unmapped network", "network \"default\"", "does not map")
        prodGrant = try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain), after: prodGrant)
        try await refused("target outside the receiving domain", to: "node-9", "node-9 is not a member of domain prod")
        // The checklist across domains: both grants pass, prod offers its node-1 and admits the
        // VM; the VM's own item fails (defined, not running) and nothing moved.
        let passing = try await check()
        print("CrossDomainMigrationTests --check:\n" + passing.lines.joined(separator: "\n"))
        let byName = Dictionary(passing.items.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byName["grant"]?.ok == true && byName["offer"]?.ok == true && byName["admission"]?.ok == true && byName["network"]?.ok == true,
                "\(passing.lines)")
        #expect(byName["vm"]?.ok == false && passing.destination.hasPrefix("node-1@prod"), "\(passing.lines)")
        // A VM of prod holds the same MAC.
        var holder = spec("holder")
        holder.nics = [VMSpec.NIC(id: "net0", mac: "52:54:00:aa:00:02", attachment: .none, network: "default")]
        _ = try await f.prodHost.control.call("vm.create", ControlTypes.CreateVM(spec: holder, start: false), as: VMInfo.self)
        try await refused("MAC conflict", "MAC 52:54:00:aa:00:02", "VM holder")
        let conflict = try await check()
        #expect(conflict.items.last?.name == "offer" && conflict.items.last?.ok == false && conflict.items.last?.detail.contains("VM holder") == true,
                "\(conflict.lines)")
        _ = current
    }

    /// An agent killed in the middle of a cross-domain handover and restarted where it was: the
    /// source's recovery (and its in-doubt retry) asks `node-1@prod` on a cross-domain channel,
    /// never this domain's `node-1`, and both domains end agreeing on owner and epoch.
    @Test(arguments: [true, false])
    func aCrossDomainHandoverSurvivesAnAgentKilledAtItsCommit(_ killSource: Bool) async throws {
        let pause = ["HOSTMESH_TEST_PAUSE_AT": killSource ? "source:committing" : "destination:committed"]
        var f = try await federation(lab: killSource ? pause : [:], prod: killSource ? [:] : pause)
        defer { f.mesh.tearDown() }
        try await f.grant(f.mesh.domain, on: f.lab, f.terms(for: f.prod))
        try await f.grant(f.prod, on: f.prodHost, f.terms(for: f.mesh.domain))
        let vm = crossingSpec("doubtful", mac: "52:54:00:aa:00:03", labels: nil)
        _ = try await f.lab.control.call("vm.create", ControlTypes.CreateVM(spec: vm, start: true), as: VMInfo.self)
        let (boot, before) = try await heartbeat(f.lab, "doubtful", after: 1)
        let fed = f
        let migration = Task { try await fed.move("doubtful", from: fed.lab, into: "prod", via: fed.prodHost) }
        var lab = f.lab, prodHost = f.prodHost
        if killSource {
            // Paused before the commit: prod never ran it, so lab takes it back at epoch 1 + 2.
            try await awaitPause(lab, at: "source:committing")
            lab.kill()
            _ = await migration.result
            lab = try await f.mesh.start("node-1", arguments: ["--listen", lab.address])
            try await awaitSettled(vm: "doubtful", running: lab, absent: prodHost, context: "source killed at committing")
            try await awaitOwner(lab, vm: vm.id, owner: "node-1", epoch: 3)
            #expect(try await lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self).isEmpty)
        } else {
            // prod committed, then died: lab's in-doubt handover asks node-1@prod until it answers.
            try await awaitPause(prodHost, at: "destination:committed")
            prodHost.kill()
            _ = await migration.result
            prodHost = try await f.mesh.start("node-1", of: f.prod, directory: "prod-node-1", arguments: ["--listen", prodHost.address])
            try await awaitSettled(vm: "doubtful", running: prodHost, absent: lab, context: "destination killed at committed")
            try await awaitOwner(lab, vm: vm.id, owner: "node-1@prod", epoch: 2)
            let tombstones = try await lab.control.call("tombstones", Empty(), as: [ControlTypes.Tombstone].self)
            #expect(tombstones.map(\.owner) == ["node-1@prod"] && tombstones.first?.epoch == 2, "\(tombstones)")
        }
        f = Federation(mesh: f.mesh, prod: f.prod, lab: lab, prodHost: prodHost)
        let winner = killSource ? lab : prodHost
        let (bootAfter, after) = try await heartbeat(winner, "doubtful", after: before)
        #expect(bootAfter == boot && after > before, "the guest rebooted or its heartbeat went back")
    }
}
