import Agent
import ControlAPI
import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel
import Testing

/// Real agents on loopback with short certificate lifetimes: a host renews its certificate from
/// an issuer at half its lifetime, again and again, and presents the new one; renewal for
/// another host or from a host that is no issuer is refused with the reason; an expired
/// certificate is refused.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct RenewalProcessTests {
    func credentials(_ directory: String) throws -> ChannelCredentials {
        ChannelCredentials(identity: try HostIdentity.load(fromDirectory: directory), certificate: try HostCertificate.load(directory + "/host.cert"),
                           trust: try TrustStore.load(fromDirectory: directory + "/trust"))
    }

    func connect(to agent: AgentProcess, as directory: String) async throws -> SecureConnection {
        try await SecureConnection.connect(host: agent.host, port: agent.port,
                                           configuration: SecureChannelConfiguration(credentials: try credentials(directory)), logger: Logger(label: "test"))
    }

    /// Polls `host.cert` in `directory` until `condition` holds for it (a 30 s hang detector).
    func certificate(in directory: String, _ what: String, _ condition: (HostCertificate) -> Bool) async throws -> HostCertificate? {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            // The agent replaces the file atomically; a read between is impossible, a missing file a bug.
            if let certificate = try? HostCertificate.load(directory + "/host.cert"), condition(certificate) { return certificate }
            try await Task.sleep(for: .milliseconds(200))
        }
        let log = (try? String(contentsOfFile: directory + "/agent.log", encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n").filter { $0.contains("certif") || $0.contains("renew") }.suffix(20)
        Issue.record("host.cert in \(directory): not within 30 s: \(what)\n\(lines.joined(separator: "\n"))")
        return nil
    }

    func refusal(_ body: () async throws -> Void) async -> String {
        do { try await body(); return "accepted" } catch { return "\(error)" }
    }

    @Test func aHostRenewsAtHalfLifeFromAnIssuerAndPresentsTheNewCertificate() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let now = Int64(Date().timeIntervalSince1970)
        // node-1 is an issuer of 14-second certificates.
        let issuerDir = try mesh.host("node-1")
        let delegation = mesh.domain.delegate(to: try HostPublicKeys.load(issuerDir + "/host.pub"), serial: 100, notBefore: now - 60,
                                              notAfter: now + 3_600, maxLifetime: 60)
        try delegation.save(issuerDir + "/issuer.cert")
        let issuer = try await mesh.start("node-1", arguments: ["--certificate-lifetime", "14"])
        // node-2 starts with a 12-second certificate straight from the domain.
        let hostDir = try mesh.host("node-2")
        let keys = try HostPublicKeys.load(hostDir + "/host.pub")
        let first = mesh.domain.certify(keys, serial: 2, notBefore: now - 2, notAfter: now + 10)
        try first.save(hostDir + "/host.cert")
        let host = try await mesh.start("node-2", arguments: ["--join", issuer.address])

        // Renewed by the issuer (its delegation rides along), then renewed again at half of that.
        guard let renewed = try await certificate(in: hostDir, "renewed by node-1", { $0.issuer?.hostID == "node-1" }) else { return }
        #expect(renewed.body.identityKey == first.body.identityKey && renewed.hostID == "node-2")
        #expect(renewed.body.notAfter - renewed.body.notBefore == 14)
        guard let again = try await certificate(in: hostDir, "renewed a second time", { $0.serial != renewed.serial && $0.issuer != nil }) else { return }
        #expect(again.body.notAfter > renewed.body.notAfter)
        #expect(host.log.contains("certificate renewed") && issuer.log.contains("certificate renewed"))

        // node-2's handshakes present the renewed certificate (its file and its channels agree).
        let connection = try await connect(to: host, as: issuerDir)
        let presented = connection.peer.certificate
        try? await connection.channel.channel.close() // only the handshake was needed
        let current = try HostCertificate.load(hostDir + "/host.cert")
        #expect(presented.issuer?.hostID == "node-1")
        #expect(presented.serial == current.serial || presented.body.notAfter <= current.body.notAfter, "presented \(presented.serial), file \(current.serial)")
        #expect(presented.serial != first.serial)

        // Renewal for another host id: refused, naming it.
        var forOther = Hostmesh_V1_AgentEnvelope()
        forOther.certificateRenewal.hostID = "node-1"
        forOther.certificateRenewal.identityKey = current.body.identityKey
        forOther.certificateRenewal.staticKey = current.body.staticKey
        let otherHost = await refusal { _ = try await self.connect(to: issuer, as: hostDir).request(forOther) }
        #expect(otherHost.contains("renewal asked for host node-1 by node-2"), "\(otherHost)")
        // Renewal from a host that is not an issuer: refused, saying so.
        var mine = forOther
        mine.certificateRenewal.hostID = "node-1"
        mine.certificateRenewal.identityKey = try HostCertificate.load(issuerDir + "/host.cert").body.identityKey
        mine.certificateRenewal.staticKey = try HostCertificate.load(issuerDir + "/host.cert").body.staticKey
        let notIssuer = await refusal { _ = try await self.connect(to: host, as: issuerDir).request(mine) }
        #expect(notIssuer.contains("is not an issuer"), "\(notIssuer)")
        #expect(issuer.log.contains("certificate renewal refused"))
    }

    @Test func anExpiredCertificateIsRefused() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let agent = try await mesh.start("node-1")
        let dir = try mesh.host("node-3")
        let now = Int64(Date().timeIntervalSince1970)
        // Expired two minutes ago, beyond the 60 s of tolerated clock skew.
        try mesh.domain.certify(try HostPublicKeys.load(dir + "/host.pub"), serial: 3, notBefore: now - 3_600, notAfter: now - 120).save(dir + "/host.cert")
        do {
            _ = try await connect(to: agent, as: dir)
            Issue.record("an expired certificate was accepted")
        } catch let error as SecureChannelError {
            #expect(error.code == .certificateExpired, "refused with \(error)")
        }
    }
}

/// Key rotation on real agents (Protocol.md §2.8).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KeyRotationProcessTests {
    let renewal = RenewalProcessTests()

    @Test func aHostRotatesItsKeyThroughAnIssuerAndNewChannelsUseTheNewKey() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let now = Int64(Date().timeIntervalSince1970)
        let issuerDir = try mesh.host("node-1")
        try mesh.domain.delegate(to: try HostPublicKeys.load(issuerDir + "/host.pub"), serial: 100, notBefore: now - 60,
                                 notAfter: now + 3_600, maxLifetime: 86_400).save(issuerDir + "/issuer.cert")
        let issuer = try await mesh.start("node-1")
        let hostDir = try mesh.host("node-2")
        let host = try await mesh.start("node-2", arguments: ["--join", issuer.address])
        let oldKey = try HostIdentity.load(fromDirectory: hostDir).signingKey.publicKey
        // Wait until node-2 knows node-1 (rotation asks the live members).
        for _ in 0..<100 {
            if try await host.control.call("members", Empty(), as: [MemberRow].self).contains(where: { $0.host == "node-1" && $0.status == "alive" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (status, output) = try runTool(AgentProcess.binary, ["keys", "rotate", "--state-dir", hostDir])
        #expect(status == 0 && output.contains("rotated the key of node-2"), "\(output)")
        let newIdentity = try HostIdentity.load(fromDirectory: hostDir)
        let newCertificate = try HostCertificate.load(hostDir + "/host.cert")
        #expect(newIdentity.signingKey.publicKey != oldKey)
        #expect([UInt8](newCertificate.body.identityKey) == newIdentity.signingKey.publicKey.bytes && newCertificate.issuer?.hostID == "node-1")
        #expect(!FileManager.default.fileExists(atPath: hostDir + "/host.key.next"))
        // A new channel to node-2 authenticates the new key.
        let connection = try await renewal.connect(to: host, as: issuerDir)
        #expect([UInt8](connection.peer.certificate.body.identityKey) == newIdentity.signingKey.publicKey.bytes)
        try? await connection.channel.channel.close() // only the handshake was needed
        #expect(issuer.log.contains("key rotation accepted"))
        // node-2 reaches the issuer with the new key: the requests below complete their handshakes.

        // A rotation record signed by the new key only, presented over node-2's channel: refused.
        let impostor = try HostIdentity(hostID: "node-2")
        let oneKey = RotationRecord(from: impostor, to: impostor, domain: "lab", now: Int64(Date().timeIntervalSince1970))
        var request = Hostmesh_V1_AgentEnvelope()
        request.certificateRenewal.hostID = "node-2"
        request.certificateRenewal.identityKey = Data(impostor.signingKey.publicKey.bytes)
        request.certificateRenewal.staticKey = Data(impostor.staticKey.publicKey.bytes)
        request.certificateRenewal.rotation = Data(oneKey.serialized)
        let refused = await renewal.refusal { _ = try await self.renewal.connect(to: issuer, as: hostDir).request(request) }
        #expect(refused.contains("key rotation refused"), "\(refused)")
        // New keys without any record: refused, saying a record is needed.
        request.certificateRenewal.rotation = Data()
        let bare = await renewal.refusal { _ = try await self.renewal.connect(to: issuer, as: hostDir).request(request) }
        #expect(bare.contains("new keys need a rotation record signed by both keys"), "\(bare)")
    }
}

/// A rotation that stopped between its files (Protocol.md §2.8) is finished or undone at start.
@Suite struct UnfinishedRotationTests {
    @Test func anAgentFinishesARotationWhoseCertificateWasWrittenAndDiscardsOneWhoseWasNot() throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let now = Int64(Date().timeIntervalSince1970)
        // The certificate already certifies the next key: the move is finished.
        let dir = try mesh.host("node-2")
        let next = try HostIdentity(hostID: "node-2")
        try next.saveKey(to: dir + "/host.key.next", overwrite: false)
        try mesh.domain.certify(next.publicKeys, serial: 9, notBefore: now - 60, notAfter: now + 3_600).save(dir + "/host.cert")
        let finished = try AgentCredentials.load(stateDirectory: dir)
        #expect(finished.identity.signingKey.publicKey == next.signingKey.publicKey)
        #expect(!FileManager.default.fileExists(atPath: dir + "/host.key.next"))
        #expect(try HostPublicKeys.load(dir + "/host.pub") == next.publicKeys)
        // The certificate still certifies the current key: the next key is discarded.
        let other = try mesh.host("node-3")
        let current = try HostIdentity.load(fromDirectory: other)
        try HostIdentity(hostID: "node-3").saveKey(to: other + "/host.key.next", overwrite: false)
        #expect(try AgentCredentials.load(stateDirectory: other).identity.signingKey.publicKey == current.signingKey.publicKey)
        #expect(!FileManager.default.fileExists(atPath: other + "/host.key.next"))
    }
}
