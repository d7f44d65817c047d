import Agent
import ControlAPI
import Foundation
import Logging
import MeshIdentity
import SecureChannel
import Testing

/// Issue 10 (item 2's leftover): the host keys an agent saw rotated away are kept durably, so a
/// retired key stays refused after the agent restarts, instead of being accepted again for as
/// long as its old certificate lasts (Protocol.md §3.9).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct RetiredKeyProcessTests {
    let renewal = RenewalProcessTests()

    @Test func aRetiredKeyStaysRefusedAfterTheAgentRestarts() async throws {
        let mesh = try TestMesh()
        defer { mesh.tearDown() }
        let grace = 2
        let c = try await mesh.start("node-c", arguments: ["--key-grace-period", "\(grace)"])
        // node-b's agent is this test: a channel to node-c with its current key, then a rotation
        // made with a record (a new key and a certificate from the domain), so the open channel
        // re-authenticates in place and node-c retires the old key.
        let bDirectory = try mesh.host("node-b")
        let old = try HostIdentity.load(fromDirectory: bDirectory)
        let credentials = try renewal.credentials(bDirectory)
        let connection = try await SecureConnection.connect(host: c.host, port: c.port,
                                                            configuration: SecureChannelConfiguration(credentials: credentials), logger: Logger(label: "test"))
        let new = try HostIdentity(hostID: "node-b")
        let now = Int64(Date().timeIntervalSince1970)
        let certificate = mesh.domain.certify(new.publicKeys, serial: 50, notBefore: now - 60, notAfter: now + 86_400)
        #expect(credentials.replace(identity: new, certificate: certificate, record: RotationRecord(from: old, to: new, domain: "lab", now: now)))
        let deadline = ContinuousClock.now + .seconds(20)
        while !c.log.contains("peer re-authenticated in place"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(c.log.contains("peer re-authenticated in place"), "\(c.log.suffix(3000))")
        // The retirement is written to the store off the event loop, a moment later.
        while !c.log.contains("retired host key kept"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(c.log.contains("retired host key kept"), "\(c.log.suffix(3000))")
        try? await connection.channel.channel.close() // its work is done: node-c retired the old key

        // node-c restarts; by the time it is back the grace period is over.
        let again = try await mesh.restart(c, arguments: ["--key-grace-period", "\(grace)"])
        #expect(again.log.contains("retired host keys restored"), "\(again.log.suffix(3000))")
        try await Task.sleep(for: .seconds(grace + 1))
        // node-b's files still hold the old key and certificate: the rotation happened in this process only.
        let refused = await renewal.refusal {
            let accepted = try await renewal.connect(to: again, as: bDirectory)
            try? await accepted.channel.channel.close() // the failure is the acceptance itself, reported below
        }
        #expect(refused.contains("key retired") && refused.contains(old.signingKey.publicKey.fingerprint), "\(refused)")
        // The new key is welcome.
        var fresh = SecureChannelConfiguration(credentials: ChannelCredentials(identity: new, certificate: certificate, trust: credentials.trust))
        fresh.policy.expectedPeer = "node-c"
        let welcome = try await SecureConnection.connect(host: again.host, port: again.port, configuration: fresh, logger: Logger(label: "test"))
        #expect(welcome.peer.hostID == "node-c")
        try? await welcome.channel.channel.close() // only the handshake was needed
    }

}
