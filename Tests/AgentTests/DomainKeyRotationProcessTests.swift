import Agent
import ControlAPI
import Foundation
import MeshIdentity
import SecureChannel
import Testing

/// Domain key rotation on real agents (Protocol.md §2.10): `hostmesh domain rotate` on one
/// host's agent reaches every agent with no step on them; certificates of either key are
/// accepted during the overlap, also after a restart (stored); `--retire` makes every agent
/// refuse the old key's certificates with the reason; a forged rotation is refused by name.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DomainKeyRotationProcessTests {
    let renewal = RenewalProcessTests()

    /// A state directory for a host that is no agent: certified by `issuer`, trusting `trusting`.
    func client(_ mesh: TestMesh, _ id: String, certifiedBy issuer: DomainAuthority, trusting: [DomainAuthority]) throws -> String {
        let dir = mesh.root + "/" + id
        try FileManager.default.createDirectory(atPath: dir + "/trust", withIntermediateDirectories: true)
        let identity = try HostIdentity(hostID: id)
        try identity.save(inDirectory: dir)
        let now = Int64(Date().timeIntervalSince1970)
        try issuer.certify(identity.publicKeys, serial: 50, notBefore: now - 60, notAfter: now + 86_400).save(dir + "/host.cert")
        for (index, domain) in trusting.enumerated() { try domain.trustAnchor.save(dir + "/trust/lab\(index).pub") }
        return dir
    }

    func waitForVersion(_ version: UInt64, on agents: [AgentProcess]) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        for agent in agents {
            while try await agent.control.call("domain.rotations", Empty(), as: [ControlTypes.DomainKeyRotationInfo].self).map(\.version).max() ?? 0 < version {
                guard ContinuousClock.now < deadline else {
                    throw ControlError.failed("\(agent.hostID) never learned domain key rotation version \(version):\n\(agent.log.suffix(3000))")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test func aDomainRotatesItsKeyAcrossTheMeshWithNoStepOnEachHostThenRetiresTheOldOne() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let domainDir = mesh.root + "/domain"
        try FileManager.default.createDirectory(atPath: domainDir, withIntermediateDirectories: true)
        try mesh.domain.save(inDirectory: domainDir)
        let a = try await mesh.start("node-a")
        let b = try await mesh.start("node-b", arguments: ["--join", a.address, "--peer", a.address])
        var c = try await mesh.start("node-c", arguments: ["--join", a.address, "--peer", a.address, "--peer", b.address])
        try await Task.sleep(for: .milliseconds(500))

        // The operator rotates, handing the record to node-a's agent only.
        let (status, output) = try runTool(AgentProcess.binary, ["domain", "rotate", "--domain-dir", domainDir, "--state-dir", a.stateDirectory])
        #expect(status == 0 && output.contains("cross-signed by") && output.contains("now trusts key"), "\(output)")
        let new = try DomainAuthority.load(fromDirectory: domainDir)
        let old = try DomainAuthority.load(keyFile: domainDir + "/domain.key.old")
        #expect(new.signingKey.publicKey != old.signingKey.publicKey && old.signingKey.publicKey == mesh.domain.signingKey.publicKey)
        try await waitForVersion(1, on: [a, b, c])
        #expect(c.log.contains("new domain key trusted"))

        // The overlap: a host certified by the new key and one by the old key are both let in.
        let fresh = try client(mesh, "node-d", certifiedBy: new, trusting: [old, new])
        let veteran = try client(mesh, "node-e", certifiedBy: old, trusting: [old])
        for dir in [fresh, veteran] {
            let connection = try await renewal.connect(to: c, as: dir)
            #expect(connection.peer.hostID == "node-c")
            try? await connection.channel.channel.close() // only the handshake was needed
        }
        // Kept across a restart: node-c still trusts the new key with no file changed on it.
        c = try await mesh.restart(c, arguments: ["--join", a.address, "--peer", a.address, "--peer", b.address])
        let afterRestart = try await renewal.connect(to: c, as: fresh)
        try? await afterRestart.channel.channel.close() // only the handshake was needed

        // A forged rotation (a stranger's key "rotating" lab) is refused by name.
        let stranger = try DomainAuthority(name: "lab")
        let forged = DomainKeyRotation(from: stranger, to: try DomainAuthority(name: "lab"), version: 9, issuedAt: Int64(Date().timeIntervalSince1970), oldRetired: false)
        await #expect {
            _ = try await b.control.call("domain.rotation.publish", ControlTypes.PublishDomainKeyRotation(record: forged.serialized), as: ControlTypes.Text.self)
        } throws: { "\($0)".contains("neither its old key") }

        // Before retiring, the hosts get certificates of the new key (here by the domain key
        // directly, and a restart; issuers delegated by the new key renew them online). They
        // start with trust/ unchanged: the stored rotation makes their new certificates verify.
        var agents = [a, b, c]
        for (index, agent) in agents.enumerated() {
            let now = Int64(Date().timeIntervalSince1970)
            try new.certify(try HostPublicKeys.load(agent.stateDirectory + "/host.pub"), serial: UInt64(200 + index), notBefore: now - 60,
                            notAfter: now + 86_400).save(agent.stateDirectory + "/host.cert")
        }
        agents[0] = try await mesh.restart(a)
        agents[1] = try await mesh.restart(b, arguments: ["--join", agents[0].address, "--peer", agents[0].address])
        agents[2] = try await mesh.restart(c, arguments: ["--join", agents[0].address, "--peer", agents[0].address, "--peer", agents[1].address])
        try await Task.sleep(for: .seconds(1))

        // Retire the old key: every agent refuses its certificates from then on, saying why.
        let (retireStatus, retired) = try runTool(AgentProcess.binary, ["domain", "rotate", "--retire", "--domain-dir", domainDir, "--state-dir", agents[1].stateDirectory])
        #expect(retireStatus == 0 && retired.contains("retired key \(old.signingKey.publicKey.fingerprint)"), "\(retired)")
        try await waitForVersion(2, on: agents)
        let refused = await renewal.refusal { _ = try await self.renewal.connect(to: agents[2], as: veteran) }
        #expect(refused.contains("domain key retired") && refused.contains(old.signingKey.publicKey.fingerprint), "\(refused)")
        let stillIn = try await renewal.connect(to: agents[0], as: fresh)
        #expect(stillIn.peer.hostID == "node-a")
        try? await stillIn.channel.channel.close() // only the handshake was needed
        #expect(FileManager.default.fileExists(atPath: domainDir + "/domain.key.retired") && !FileManager.default.fileExists(atPath: domainDir + "/domain.key.old"))
    }
}
