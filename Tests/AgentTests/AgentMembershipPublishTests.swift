@testable import Agent
import Foundation
import Logging
import Membership
import MeshIdentity
import SecureChannel
import ControlAPI
import GossipTransport
import Testing

/// This host's gossiped metadata under concurrent changes, with the real membership service on
/// loopback: whatever order the changes' awaits interleave in, the service ends up holding
/// every change (no update sends a copy made before another change's await).
@Suite(.timeLimit(.minutes(1)))
struct AgentMembershipPublishTests {
    @Test func aCapacityRefreshDuringALeaveOfMaintenanceDoesNotPutTheFlagBack() async throws {
        let directory = NSTemporaryDirectory() + "hm-publish-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) } // best effort: a temporary directory
        var configuration = AgentConfiguration()
        configuration.stateDirectory = directory
        configuration.gossipListen = HostPort(host: "127.0.0.1", port: 0)
        let lab = try DomainAuthority(name: "lab")
        let identity = try HostIdentity(hostID: "node-a")
        let now = Int64(Date().timeIntervalSince1970)
        let certificate = lab.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
        let credentials = ChannelCredentials(identity: identity, certificate: certificate,
                                             trust: TrustStore(anchors: [lab.trustAnchor], clockSkewSeconds: 0))
        let membership = try AgentMembership(configuration: configuration, credentials: credentials,
                                             channel: HostPort(host: "127.0.0.1", port: 7000), logger: Logger(label: "test"))
        _ = try await membership.service.start()
        let running = Task { try await membership.service.run() }
        defer { running.cancel() }

        for round in 1...40 {
            await membership.setMaintenance(true)
            // The leave starts first; the refresh comes in while its update is on its way.
            async let leave: Void = membership.setMaintenance(false)
            async let refresh: Void = membership.refresh(runningVMs: round, migrationsInFlight: 0)
            _ = await (leave, refresh)
            let local = await membership.service.members().first(where: \.isLocal)?.member.metadata
            #expect(local?.maintenance == false, "round \(round): the service holds maintenance=\(String(describing: local?.maintenance))")
            #expect(local?.runningVMs == UInt32(round), "round \(round): the service holds \(String(describing: local?.runningVMs)) VMs")
        }
    }
}
