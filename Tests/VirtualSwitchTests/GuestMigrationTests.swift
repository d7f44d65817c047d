import Foundation
import Hypervisor
import NIOCore
import Testing
@testable import VirtualSwitch

/// A real guest live-migrated (QEMU's own migration, TCG) from a port on one switch to a port
/// on another, with the port state exported, imported blocked, activated by the destination
/// QEMU's announcement, and stragglers forwarded; a peer guest on a third switch keeps pinging
/// it. The migrating guest's port admits no new inbound TCP and tracks TCP strictly (only a SYN
/// opens a connection), so its own TCP connection to the peer survives only because connection
/// tracking moved with it. The agents' protocol (who
/// freezes when) is the lead's; this checks the switch mechanics with real QEMU.
@Suite("Real guest migrating between switches", .guestBuilt, .serialized, .timeLimit(.minutes(2)))
struct GuestMigrationTests {
    static let macM = MACAddress("52:54:00:77:01:03")!
    static let macP = MACAddress("52:54:00:77:01:02")!

    @Test func thePortFollowsTheGuestAndThePeerKeepsItsConnection() async throws {
        let started = ContinuousClock.now
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var switches: [VirtualSwitch] = []
        for host in ["host-a", "host-b", "host-c"] { switches.append(try await GuestNetworkTests.makeSwitch(HostID(host))) }
        let (a, b, c) = (switches[0], switches[1], switches[2])
        let secret = MeshCryptoSupport.randomSecret() // one secret for the test; agents use one per pair
        for s in switches {
            for peer in switches where peer !== s {
                try await s.setPeer(peer.configuration.hostID, address: #require(await peer.overlayAddress()), sharedSecret: secret)
            }
        }
        let relay = relayLocations(among: switches)
        defer { relay.cancel() }

        var portM = GuestNetworkTests.port("vm-m", mac: Self.macM, ip: "10.77.0.3")
        portM.policy = SecurityPolicy(ingress: .rules([FirewallRule(proto: IPProtocol.icmp)]), looseTCPPickup: false)
        let attachOnA = PortAttachment(switchSocketPath: root + "/m-a.sw", vmSocketPath: root + "/m-a.vm")
        let attachOnB = PortAttachment(switchSocketPath: root + "/m-b.sw", vmSocketPath: root + "/m-b.vm")
        let attachP = PortAttachment(switchSocketPath: root + "/p.sw", vmSocketPath: root + "/p.vm")
        try await a.createPort(portM, attachment: attachOnA)
        try await c.createPort(GuestNetworkTests.port("vm-p", mac: Self.macP, ip: "10.77.0.2"), attachment: attachP)

        let specM = try #require(Guests.spec(name: "vm-m", mac: Self.macM, ip: "10.77.0.3", work: "heartbeat,tcp:10.77.0.2:7", attachment: attachOnA))
        let source = try await Guests.launch(specM, in: root + "/m-src")
        defer { source.kill() }
        let peer = try await Guests.launch(#require(Guests.spec(name: "vm-p", mac: Self.macP, ip: "10.77.0.2",
                                                                work: "ping:10.77.0.3,echo:7", attachment: attachP)), in: root + "/p")
        defer { peer.kill() }
        let ready = await eventually(timeout: .seconds(60)) {
            Guests.pingsReceived(peer.directory.readConsole()) >= 5 && (Guests.tcpEchoes(source.directory.readConsole())?.ok ?? 0) >= 5
        }
        try #require(ready, "peer: \(peer.directory.readConsole().suffix(400))\nmigrating: \(source.directory.readConsole().suffix(400))")
        let tracked = await a.portStatus(portM.id)?.connections ?? 0
        #expect(tracked >= 1)

        // Pre-copy: the destination port exists, fully configured, blocked.
        let record = try await a.exportPortState(portM.id)
        try await b.importPort(PortStateRecord(serializedBytes: record.serializedBytes()), attachment: attachOnB,
                               activationTimeout: .seconds(30))
        #expect(await b.portStatus(portM.id)?.lifecycle == .blocked)
        var specOnB = specM
        specOnB.nics[0].attachment = .dgram(localPath: attachOnB.vmSocketPath, remotePath: attachOnB.switchSocketPath)
        var options = VMProcess.Options()
        options.binary = Guests.qemu ?? "qemu-system-x86_64"
        options.accelerator = source.record.accelerator
        let destination = try await VMProcess.launch(spec: specOnB, directory: VMRuntimeDirectory(path: root + "/m-dst"), mode: .incoming,
                                                     options: options)
        defer { destination.kill() }
        try await b.applyPortDelta(PortStateDelta(serializedBytes: a.exportPortDelta(portM.id).serializedBytes()))

        var settings = MigrationSettings()
        settings.maxBandwidthBytesPerSecond = 10_000_000_000
        let result = try await DirectMigration.run(source: source, destination: destination, socketPath: destination.directory.incomingSocket,
                                                   settings: settings)
        // Switchover (here after QEMU's, the agents will do it at pre-switchover): freeze, final
        // delta, stragglers to the new host.
        let final = try await a.freezePort(portM.id)
        #expect(final.isFinal)
        try await b.applyPortDelta(PortStateDelta(serializedBytes: final.serializedBytes()))
        try await a.forwardStragglers(portM.id, to: "host-b", grace: .seconds(2))

        // The destination QEMU's announcement activates the port; the location moves to B.
        let activated = await eventually(timeout: .seconds(10)) { await b.portStatus(portM.id)?.lifecycle == .active }
        let statusOnB = await b.portStatus(portM.id)
        #expect(activated, "B's port: \(String(describing: statusOnB))")
        let moved = await eventually {
            await c.locationEntries().first { $0.location.mac == Self.macM }?.location == MACLocation(
                mac: Self.macM, segment: 100, host: "host-b", sequence: 2, ips: [IPAddress("10.77.0.3")!])
        }
        #expect(moved)

        // The peer keeps pinging the guest on B; the guest's TCP connection lives on.
        let pingsAtMove = Guests.pingsReceived(peer.directory.readConsole())
        let echoesAtMove = Guests.tcpEchoes(source.directory.readConsole())?.ok ?? 0
        var after = ""
        let continued = await eventually(timeout: .seconds(30)) {
            after = peer.directory.readConsole()
            return Guests.pingsReceived(after) >= pingsAtMove + 20 && (Guests.tcpEchoes(destination.directory.readConsole())?.ok ?? 0) >= echoesAtMove + 20
        }
        let onDestination = destination.directory.readConsole()
        #expect(continued, "peer: \(after.suffix(400))\nmigrated guest: \(onDestination.suffix(400))")
        let tcp = Guests.tcpEchoes(onDestination)
        #expect(tcp?.connections == 1, "the guest's TCP connection survived the move")
        #expect(!onDestination.contains("boot_id="), "the guest moved, it did not reboot")
        let dropsOnB = await b.counters(of: portM.id)
        #expect(dropsOnB?[.ingressPolicy] == 0 && dropsOnB?[.conntrackInvalid] == 0, "passed on moved connection state: \(String(describing: dropsOnB))")
        let portOnB = try #require(await b.counters(of: portM.id))
        #expect(portOnB.rxFrames > final.counters.rxFrames && portOnB.txFrames > final.counters.txFrames, "counters continue from the source's")
        let stragglers = await a.counters().switch.stragglersForwarded
        let gaps = after.split(whereSeparator: \.isNewline).filter { $0.hasPrefix("PINGGAP") || $0.hasPrefix("TCPGAP") }

        relay.cancel()
        await destination.stop(quitGrace: .seconds(1))
        await peer.stop(quitGrace: .seconds(1))
        for s in switches { await s.stop() }
        print("migration between switches: QEMU total \(result.totalTimeMs) ms, downtime \(result.downtimeMs) ms; "
            + "stragglers forwarded \(stragglers); peer gaps \(gaps.map(String.init)); test took \(ContinuousClock.now - started)")
    }
}
