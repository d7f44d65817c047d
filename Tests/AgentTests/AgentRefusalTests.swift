import Foundation
import Logging
import MeshIdentity
import MeshWire
import SecureChannel
import Testing

/// Refusals after the handshake reach the refused peer as an authenticated close with a specific
/// code and the reason (Protocol.md §5.3, issue 17), not as an orderly close.
@Suite(.serialized) struct AgentRefusalTests {
    /// A member that trusts a second domain (so a host of it passes the handshake) refuses its
    /// join at the agent level, and an unexpected message on a control channel.
    @Test func refusalsCarryTheirCodeAndReason() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let elsewhere = try DomainAuthority(name: "elsewhere")
        let dir = try mesh.host("node-1")
        try elsewhere.trustAnchor.save(dir + "/trust/elsewhere.pub")
        let member = try await mesh.start("node-1")

        let identity = try HostIdentity(hostID: "mallory")
        let now = Int64(Date().timeIntervalSince1970)
        let certificate = elsewhere.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        let credentials = ChannelCredentials(identity: identity, certificate: certificate,
                                             trust: TrustStore(anchors: [elsewhere.trustAnchor, mesh.domain.trustAnchor]))
        func refusal(purpose: String, _ envelope: Hostmesh_V1_AgentEnvelope) async throws -> SecureChannelError? {
            var policy = ChannelPolicy(purpose: purpose, targetDomain: mesh.domain.trustAnchor)
            policy.expectedPeer = "node-1"
            let connection = try await SecureConnection.connect(host: "127.0.0.1", port: member.port,
                                                                configuration: SecureChannelConfiguration(credentials: credentials, policy: policy),
                                                                logger: Logger(label: "test"))
            do {
                let answer = try await connection.request(envelope)
                Issue.record("expected a refusal, got \(String(describing: answer))")
                return nil
            } catch let error as SecureChannelError {
                return error
            }
        }

        var join = Hostmesh_V1_AgentEnvelope()
        join.joinRequest = Hostmesh_V1_JoinRequest()
        let joinRefusal = try await refusal(purpose: "join", join)
        #expect(joinRefusal?.byPeer == true && joinRefusal?.code == .wrongDomain)
        #expect(joinRefusal?.detail.contains("joining this mesh needs domain lab") == true, "\(String(describing: joinRefusal))")

        var unexpected = Hostmesh_V1_AgentEnvelope()
        unexpected.migrationVerdict.migrationID = "nothing-asked"
        let unexpectedRefusal = try await refusal(purpose: "control", unexpected)
        #expect(unexpectedRefusal?.byPeer == true && unexpectedRefusal?.code == .protocolViolation)
        #expect(unexpectedRefusal?.detail.contains("unexpected message") == true, "\(String(describing: unexpectedRefusal))")
    }
}
