import Agent
import ControlAPI
import Foundation
import Hypervisor
import Logging
import MeshIdentity
import SecureChannel
import Testing

/// Five real agent processes on loopback; the domain revokes one host. Every other agent cuts
/// it off (closes a channel it holds open, code 21, and drops it from gossip), it is refused
/// when it rejoins at a new address, and the revocation survives the agents' restarts.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RevocationProcessTests {
    func members(_ agent: AgentProcess) async throws -> [MemberRow] {
        try await agent.control.call("members", Empty(), as: [MemberRow].self)
    }

    func eventually(_ agents: [AgentProcess], within limit: Duration = .seconds(30), _ what: String,
                    _ condition: ([MemberRow]) -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var all = true
            for agent in agents where !condition(try await members(agent)) { all = false }
            if all { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        var views = ""
        for agent in agents { views += "\n\(agent.hostID): \(try await members(agent).map { "\($0.host)=\($0.status)" })" }
        Issue.record("not within \(limit): \(what)\(views)")
    }

    /// The credentials of a host of the mesh, as its agent loads them.
    func credentials(_ directory: String) throws -> ChannelCredentials {
        ChannelCredentials(identity: try HostIdentity.load(fromDirectory: directory), certificate: try HostCertificate.load(directory + "/host.cert"),
                           trust: try TrustStore.load(fromDirectory: directory + "/trust"))
    }

    /// Opens a control channel to `agent` as the host whose state is in `directory`.
    func connect(to agent: AgentProcess, as directory: String) async throws -> SecureConnection {
        try await SecureConnection.connect(host: agent.host, port: agent.port,
                                           configuration: SecureChannelConfiguration(credentials: try credentials(directory)),
                                           logger: Logger(label: "test"))
    }

    @Test func aRevokedHostIsCutOffByEveryAgentAndRefusedAtANewAddress() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1")
        var agents = [first]
        for i in 2...5 { agents.append(try await mesh.start("node-\(i)", arguments: ["--join", first.address])) }
        try await eventually(agents, "all five alive everywhere") { rows in rows.count == 5 && rows.allSatisfy { $0.status == "alive" } }
        let victim = agents[3]
        let survivors = agents.filter { $0.hostID != victim.hostID }

        // The victim holds a channel open to every survivor (as a migration or the overlay would).
        var open: [(AgentProcess, SecureConnection)] = []
        for survivor in survivors { open.append((survivor, try await connect(to: survivor, as: victim.stateDirectory))) }

        // The domain revokes it; the list is handed to one agent only (node-1).
        let list = try mesh.domain.revoke(.host(victim.hostID), reason: "test: key leaked", after: nil, now: Int64(Date().timeIntervalSince1970))
        let info = try await first.control.call("revocations.publish", ControlTypes.PublishRevocations(list: list.serialized),
                                                as: ControlTypes.RevocationListInfo.self)
        #expect(info.version == 1 && info.entries.first?.host == victim.hostID)
        let revokedAt = ContinuousClock.now

        // Every survivor closes its channel with the victim, saying why (code 21).
        for (survivor, connection) in open {
            let closed: SecureChannelError? = await {
                do {
                    try await connection.channel.executeThenClose { inbound, _ in for try await _ in inbound {} }
                    return nil
                } catch let error as SecureChannelError { return error } catch { return nil }
            }()
            #expect(closed?.code == .revoked, "\(survivor.hostID) closed the victim's channel with \(String(describing: closed))")
            #expect(closed?.detail.contains("test: key leaked") == true)
        }
        print("RevocationProcessTests: every survivor cut the revoked host's channel \(ContinuousClock.now - revokedAt) after the publish on one agent")

        // Every survivor forgets it in gossip, and keeps it forgotten though it still runs and gossips.
        try await eventually(survivors, "the revoked host is gone from every survivor's members") { rows in
            !rows.contains { $0.host == victim.hostID } && rows.count == 4
        }
        try await Task.sleep(for: .seconds(3))
        for survivor in survivors {
            #expect(try await !members(survivor).contains { $0.host == victim.hostID }, "\(survivor.hostID) took the revoked host back")
            #expect(survivor.log.contains("revocation in force"))
        }
        // Each agent holds the list (it reached the four others by gossip).
        for survivor in survivors {
            let held = try await survivor.control.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self)
            #expect(held.map(\.version) == [1], "\(survivor.hostID) holds \(held.map(\.version))")
        }

        // A new handshake from it is refused, naming the revocation.
        do {
            _ = try await connect(to: survivors[1], as: victim.stateDirectory)
            Issue.record("a revoked host completed a handshake")
        } catch let error as SecureChannelError {
            #expect(error.code == .revoked, "refused with \(error)")
        }

        // It restarts at a new address (new ports) and tries to join: refused, and nobody lists it.
        victim.kill()
        let back = try await mesh.start(victim.hostID, arguments: ["--join", survivors[2].address])
        #expect(back.address != victim.address)
        do {
            _ = try await back.control.call("join", ControlTypes.Join(address: survivors[0].address), as: ControlTypes.Text.self)
            Issue.record("a revoked host joined again at \(back.address)")
        } catch let error as ControlError {
            #expect(error.message.contains("revoked"), "join refused with: \(error.message)")
        }
        // A migration it starts is refused too. Its prepare leaves with the handshake's last message,
        // before the destination has accepted the host (SourceRun): the refusal is then the answer's
        // error, and it must still name the revocation, with the VM still running here.
        if TestGuest.available {
            let e2e = MigrationEndToEndTests()
            _ = try await back.control.call("vm.create", ControlTypes.CreateVM(spec: e2e.spec("stayer"), start: true), as: VMInfo.self)
            do {
                _ = try await e2e.migrate("stayer", from: back, to: survivors[0])
                Issue.record("a revoked host migrated a VM")
            } catch let error as ControlError {
                #expect(error.message.contains("revoked"), "migration refused with: \(error.message)")
                print("RevocationProcessTests: a migration from the revoked host: \(error.message)")
            }
            let stayer = try await back.control.call("vm.list", Empty(), as: [VMInfo].self).first { $0.name == "stayer" }
            #expect(stayer?.state == "running", "\(String(describing: stayer))")
        }
        try await Task.sleep(for: .seconds(3))
        for survivor in survivors {
            #expect(try await !members(survivor).contains { $0.host == victim.hostID }, "\(survivor.hostID) lists the revoked host again")
        }

        // The revocation is durable: a survivor restarted from its state still refuses the host.
        let restarted = try await mesh.restart(survivors[3])
        do {
            _ = try await connect(to: restarted, as: victim.stateDirectory)
            Issue.record("a restarted agent forgot the revocation")
        } catch let error as SecureChannelError {
            #expect(error.code == .revoked, "refused with \(error)")
        }
    }

    @Test func aListSignedByAnotherKeyIsRefusedAndNamesTheKey() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let impostor = try DomainAuthority(name: "lab")
        let forged = try impostor.revoke(.host("node-2"), reason: "", after: nil, now: Int64(Date().timeIntervalSince1970))
        do {
            _ = try await agent.control.call("revocations.publish", ControlTypes.PublishRevocations(list: forged.serialized),
                                             as: ControlTypes.RevocationListInfo.self)
            Issue.record("a list signed by another key was accepted")
        } catch let error as ControlError {
            #expect(error.code == "bad_request")
            #expect(error.message.contains(impostor.signingKey.publicKey.fingerprint), "\(error.message)")
        }
        #expect(try await agent.control.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self).isEmpty)
        #expect(agent.log.contains("revocation list refused"))
    }

    @Test func theCommandLineSignsTheNextVersionAndTheAgentEnforcesIt() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let domainDir = mesh.root + "/lab-domain"
        try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true)
        try mesh.domain.save(inDirectory: domainDir)
        func hostmesh(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try runTool(AgentProcess.binary, arguments + ["--state-dir", agent.stateDirectory])
        }
        let first = try hostmesh(["domain", "revoke", "node-7", "--reason", "retired", "--domain-dir", domainDir])
        #expect(first.status == 0, "\(first.output)")
        #expect(first.output.contains("version 1"), "\(first.output)")
        let second = try hostmesh(["domain", "revoke", "12", "--domain-dir", domainDir])
        #expect(second.status == 0 && second.output.contains("version 2"), "\(second.output)")
        let again = try hostmesh(["domain", "revoke", "node-7", "--domain-dir", domainDir])
        #expect(again.status != 0 && again.output.contains("already revoked"), "\(again.output)")
        let held = try await agent.control.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self)
        #expect(held.map(\.version) == [2])
        #expect(held.first?.entries.map { $0.host ?? "serial \($0.serial ?? 0)" } == ["node-7", "serial 12"])
        #expect(try RevocationList.load(domainDir + "/domain.revocations").version == 2)
        let shown = try hostmesh(["domain", "revocations"])
        #expect(shown.output.contains("node-7") && shown.output.contains("retired"), "\(shown.output)")
    }

    @Test func anIssuerRevokesAHostWithItsOwnKeyAndTheMeshEnforcesIt() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let now = Int64(Date().timeIntervalSince1970)
        let issuerDir = try mesh.host("node-1")
        try mesh.domain.delegate(to: try HostPublicKeys.load(issuerDir + "/host.pub"), serial: 100, notBefore: now - 60,
                                 notAfter: now + 3_600, maxLifetime: 86_400).save(issuerDir + "/issuer.cert")
        let issuer = try await mesh.start("node-1")
        let other = try await mesh.start("node-2", arguments: ["--join", issuer.address])
        let victim = try await mesh.start("node-3", arguments: ["--join", issuer.address])
        try await eventually([issuer, other], "all three alive") { rows in rows.count == 3 && rows.allSatisfy { $0.status == "alive" } }
        let (status, output) = try runTool(AgentProcess.binary, ["domain", "revoke", victim.hostID, "--as-issuer", "--reason", "by the issuer",
                                                                 "--state-dir", issuer.stateDirectory])
        #expect(status == 0 && output.contains("as issuer node-1"), "\(output)")
        // node-2 learns the issuer's list by gossip, verifies it through the delegation and cuts node-3 off.
        try await eventually([other], "node-2 drops the host the issuer revoked") { rows in !rows.contains { $0.host == victim.hostID } }
        let held = try await other.control.call("revocations", Empty(), as: [ControlTypes.RevocationListInfo].self)
        let issuerKey = try HostIdentity.load(fromDirectory: issuerDir).signingKey.publicKey.fingerprint
        #expect(held.first?.entries.first?.host == victim.hostID && held.first?.issuer == issuerKey)
        do {
            _ = try await connect(to: other, as: victim.stateDirectory)
            Issue.record("a host revoked by an issuer completed a handshake")
        } catch let error as SecureChannelError {
            #expect(error.code == .revoked, "refused with \(error)")
        }
    }
}
