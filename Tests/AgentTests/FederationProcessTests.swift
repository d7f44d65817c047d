import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel
import Testing

/// Two real agents of domain `lab` and a host of domain `prod` (in this process, with prod's
/// grant for lab): a grant published on one agent reaches the other by gossip, survives its
/// restart, lets the prod host open `federation` channels only (the gate answers a migration
/// with its refusal and closes on mesh messages), and its revocation on one agent cuts the
/// prod host's open channel on the other within seconds (Protocol.md §2.9, §4.15).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FederationProcessTests {
    let prod = try! DomainAuthority(name: "prod")

    func grants(_ agent: AgentProcess) async throws -> [ControlTypes.FederationGrantInfo] {
        try await agent.control.call("federation", Empty(), as: [ControlTypes.FederationGrantInfo].self)
    }

    func eventually(_ what: String, within limit: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("not within \(limit): \(what)")
    }

    /// A prod host that granted lab.
    func prodHost(lab: DomainAuthority) throws -> ChannelCredentials {
        let identity = try HostIdentity(hostID: "prod-1")
        let now = Int64(Date().timeIntervalSince1970)
        let certificate = prod.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        let trust = TrustStore(anchors: [prod.trustAnchor])
        let grant = try prod.federate(FederationTerms(peer: lab.trustAnchor, allVMs: true, notBefore: now - 60, notAfter: now + 3600), after: nil, now: now)
        trust.federation.install(grant, now: now)
        return ChannelCredentials(identity: identity, certificate: certificate, trust: trust)
    }

    func connect(_ credentials: ChannelCredentials, to agent: AgentProcess, lab: DomainAuthority, purpose: String) async throws -> SecureConnection {
        try await SecureConnection.connect(host: agent.host, port: agent.port, configuration: SecureChannelConfiguration(
            credentials: credentials, policy: ChannelPolicy(purpose: purpose, targetDomain: lab.trustAnchor)), logger: Logger(label: "test"))
    }

    /// Reads until the channel ends; the error it ended with, if any.
    func end(of connection: SecureConnection) async -> SecureChannelError? {
        do {
            try await connection.channel.executeThenClose { inbound, _ in for try await _ in inbound {} }
            return nil
        } catch let error as SecureChannelError { return error } catch { return nil }
    }

    @Test func aGrantSpreadsLetsThePeerInForFederationOnlyAndItsRevocationCutsTheChannel() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let first = try await mesh.start("node-1")
        var second = try await mesh.start("node-2", arguments: ["--join", first.address])
        let guest = try prodHost(lab: mesh.domain)

        // Before any grant: lab does not know prod's key.
        await #expect { _ = try await connect(guest, to: second, lab: mesh.domain, purpose: "federation") } throws: {
            ($0 as? SecureChannelError)?.code == .unknownIssuer
        }

        // lab grants prod on node-1; node-2 learns it by gossip.
        let now = Int64(Date().timeIntervalSince1970)
        let terms = FederationTerms(peer: prod.trustAnchor, allVMs: false, labels: ["web"], networks: [.init(peerNetwork: "front", localNetwork: "default")],
                                    notBefore: now - 60, notAfter: now + 3600)
        let grant = try mesh.domain.federate(terms, after: nil, now: now)
        let info = try await first.control.call("federation.publish", ControlTypes.PublishFederationGrant(grant: grant.serialized),
                                                as: ControlTypes.FederationGrantInfo.self)
        #expect(info.version == 1 && info.status == "in force" && info.peerDomain == "prod" && info.labels == ["web"])
        try await eventually("node-2 holds the grant") { try await grants(second).map(\.version) == [1] }

        // A federation channel: a note passes, a migration is refused with the reason.
        let channel = try await connect(guest, to: second, lab: mesh.domain, purpose: "federation")
        var prepare = Hostmesh_V1_AgentEnvelope()
        prepare.migrationPrepare.migrationID = "m-1"
        let answer = try await channel.channel.executeThenClose { inbound, outbound in
            var note = Hostmesh_V1_AgentEnvelope()
            note.note.text = "hello from prod"
            try await outbound.write(EnvelopeWriter.frame(note))
            try await outbound.write(EnvelopeWriter.frame(prepare))
            var reader = EnvelopeReader(inbound)
            return try await reader.next()
        }
        #expect(answer?.migrationPrepared.migrationID == "m-1")
        #expect(answer?.migrationPrepared.error.contains("not supported") == true, "\(String(describing: answer))")

        // The mesh's own messages never cross: a push-pull on a federation channel is closed on,
        // and a sync or join channel is refused at the handshake (code 24).
        let probe = try await connect(guest, to: second, lab: mesh.domain, purpose: "federation")
        var pushPull = Hostmesh_V1_AgentEnvelope()
        pushPull.pushPull.state = Data([1, 2, 3])
        do {
            _ = try await probe.request(pushPull)
            Issue.record("a push-pull was answered on a federation channel")
        } catch let error as SecureChannelError {
            #expect(error.code == .protocolViolation && error.byPeer, "\(error)")
        }
        for purpose in ["sync", "join"] {
            await #expect { _ = try await connect(guest, to: second, lab: mesh.domain, purpose: purpose) } throws: {
                ($0 as? SecureChannelError)?.code == .notFederated
            }
        }

        // lab revokes the grant on node-1: node-2 closes the open channel, code 24, with the reason.
        let open = try await connect(guest, to: second, lab: mesh.domain, purpose: "federation")
        let revoked = try mesh.domain.revokeGrant(grant, reason: "test: audit", now: now + 1)
        let started = ContinuousClock.now
        _ = try await first.control.call("federation.publish", ControlTypes.PublishFederationGrant(grant: revoked.serialized),
                                         as: ControlTypes.FederationGrantInfo.self)
        // Bounded, not timed: how fast is printed; a channel never cut fails here, not at the suite's limit.
        let closed = try await withThrowingTaskGroup(of: SecureChannelError?.self) { group in
            group.addTask { await self.end(of: open) }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                throw ControlError.failed("the revoked grant did not cut the open channel within 60 s")
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        let took = ContinuousClock.now - started
        #expect(closed?.code == .notFederated && closed?.detail.contains("test: audit") == true, "\(String(describing: closed))")
        print("FederationProcessTests: a grant revoked on node-1 cut prod's channel to node-2 after \(took)")
        try await eventually("node-2 logged the cut") { second.log.contains("closed cross-domain channels the grant no longer lets in") }

        // The revocation is durable: node-2 restarted from its state still refuses prod.
        second = try await mesh.restart(second)
        #expect(try await grants(second).map(\.status) == ["revoked"])
        await #expect { _ = try await connect(guest, to: second, lab: mesh.domain, purpose: "federation") } throws: {
            ($0 as? SecureChannelError)?.code == .notFederated
        }
    }

    @Test func aGrantNotSignedByTheDomainIsRefusedNamingTheKey() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let impostor = try DomainAuthority(name: "lab")
        let now = Int64(Date().timeIntervalSince1970)
        let forged = try impostor.federate(FederationTerms(peer: prod.trustAnchor, allVMs: true, notBefore: now, notAfter: now + 60), after: nil, now: now)
        do {
            _ = try await agent.control.call("federation.publish", ControlTypes.PublishFederationGrant(grant: forged.serialized),
                                             as: ControlTypes.FederationGrantInfo.self)
            Issue.record("a grant signed by another key was accepted")
        } catch let error as ControlError {
            #expect(error.code == "bad_request")
            #expect(error.message.contains(impostor.signingKey.publicKey.fingerprint), "\(error.message)")
        }
        #expect(try await grants(agent).isEmpty)
    }

    @Test func theCommandLineFederatesListsAndRevokes() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let domainDir = mesh.root + "/lab-domain"
        try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true)
        try mesh.domain.save(inDirectory: domainDir)
        let peerKey = mesh.root + "/prod.pub"
        try prod.trustAnchor.save(peerKey)
        func hostmesh(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try runTool(AgentProcess.binary, arguments + ["--state-dir", agent.stateDirectory])
        }
        let granted = try hostmesh(["domain", "federate", "--domain-dir", domainDir, "--peer-key", peerKey, "--label", "web",
                                    "--network", "front=default", "--storage-dir", "/srv/incoming", "--valid-days", "3"])
        #expect(granted.status == 0 && granted.output.contains("grant version 1"), "\(granted.output)")
        let again = try hostmesh(["domain", "federate", "--domain-dir", domainDir, "--peer-key", peerKey, "--all-vms"])
        #expect(again.status == 0 && again.output.contains("grant version 2"), "\(again.output)")
        let neither = try hostmesh(["domain", "federate", "--domain-dir", domainDir, "--peer-key", peerKey])
        #expect(neither.status != 0 && neither.output.contains("--all-vms"), "\(neither.output)")
        let badNetwork = try hostmesh(["domain", "federate", "--domain-dir", domainDir, "--peer-key", peerKey, "--all-vms", "--network", "front"])
        #expect(badNetwork.status != 0 && badNetwork.output.contains("THEIRS=OURS"), "\(badNetwork.output)")
        let listed = try hostmesh(["domain", "federation", "list"])
        #expect(listed.output.contains("prod") && listed.output.contains("in force") && listed.output.contains("all"), "\(listed.output)")
        let revoked = try hostmesh(["domain", "federation", "revoke", "prod", "--reason", "done", "--domain-dir", domainDir])
        #expect(revoked.status == 0 && revoked.output.contains("version 3"), "\(revoked.output)")
        let twice = try hostmesh(["domain", "federation", "revoke", "prod", "--domain-dir", domainDir])
        #expect(twice.status != 0 && twice.output.contains("already revoked"), "\(twice.output)")
        let unknown = try hostmesh(["domain", "federation", "revoke", "edge", "--domain-dir", domainDir])
        #expect(unknown.status != 0 && unknown.output.contains("holds no grant"), "\(unknown.output)")
        let held = try await grants(agent)
        #expect(held.map(\.version) == [3] && held.first?.status == "revoked" && held.first?.reason == "done")
    }
}
