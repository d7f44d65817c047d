import Foundation
import Hypervisor
import NIOCore
import Testing
@testable import VirtualSwitch

/// Lossless switchover with real guests (Protocol.md §8.6.1): a peer VM on a third switch pings
/// a VM every 20 ms and holds a TCP echo connection to it while it migrates (QEMU's own
/// migration) from switch A to switch B, the switches doing what the agents do: pause the port at
/// QEMU's STOP, freeze it for B when the transfer is done (what it held, copies of what it handed
/// the stopped QEMU, and what comes after, go to B at once), B holds it, and activates its port
/// just before it resumes the guest (§8.6 step 4). No switch drops a frame for the moving VM.
@Suite("Real guest: frames held across the switchover", .guestBuilt, .serialized, .timeLimit(.minutes(2)))
struct GuestSwitchoverTests {
    static let macM = MACAddress("52:54:00:77:02:03")!
    static let macP = MACAddress("52:54:00:77:02:02")!

    @Test func thePeersFramesDuringTheMoveAreHeldAndDeliveredNotDropped() async throws {
        let root = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var switches: [VirtualSwitch] = []
        for host in ["host-a", "host-b", "host-c"] { switches.append(try await GuestNetworkTests.makeSwitch(HostID(host))) }
        let (a, b, c) = (switches[0], switches[1], switches[2])
        let secret = MeshCryptoSupport.randomSecret()
        for s in switches {
            for peer in switches where peer !== s {
                try await s.setPeer(peer.configuration.hostID, address: #require(await peer.overlayAddress()), sharedSecret: secret)
            }
        }
        let relay = relayLocations(among: switches)
        defer { relay.cancel() }

        let portM = GuestNetworkTests.port("vm-m", mac: Self.macM, ip: "10.77.0.3")
        let attachOnA = PortAttachment(switchSocketPath: root + "/m-a.sw", vmSocketPath: root + "/m-a.vm")
        let attachOnB = PortAttachment(switchSocketPath: root + "/m-b.sw", vmSocketPath: root + "/m-b.vm")
        let attachP = PortAttachment(switchSocketPath: root + "/p.sw", vmSocketPath: root + "/p.vm")
        try await a.createPort(portM, attachment: attachOnA)
        try await c.createPort(GuestNetworkTests.port("vm-p", mac: Self.macP, ip: "10.77.0.2"), attachment: attachP)
        let specM = try #require(Guests.spec(name: "vm-m", mac: Self.macM, ip: "10.77.0.3", work: "heartbeat,echo:7", attachment: attachOnA))
        let source = try await Guests.launch(specM, in: root + "/m-src")
        defer { source.kill() }
        let peer = try await Guests.launch(#require(Guests.spec(name: "vm-p", mac: Self.macP, ip: "10.77.0.2", work: "ping:10.77.0.3,tcp:10.77.0.3:7",
                                                                attachment: attachP, extra: ["hm.pingms=10"])), in: root + "/p")
        defer { peer.kill() }
        let ready = await eventually(timeout: .seconds(60)) { (Guests.tcpEchoes(peer.directory.readConsole())?.ok ?? 0) >= 20 }
        try #require(ready, "peer: \(peer.directory.readConsole().suffix(400))")

        let record = try await a.exportPortState(portM.id)
        try await b.importPort(record, attachment: attachOnB, activationTimeout: .seconds(30))
        var specOnB = specM
        specOnB.nics[0].attachment = .dgram(localPath: attachOnB.vmSocketPath, remotePath: attachOnB.switchSocketPath)
        var options = VMProcess.Options()
        options.binary = Guests.qemu ?? "qemu-system-x86_64"
        options.accelerator = source.record.accelerator
        let destination = try await VMProcess.launch(spec: specOnB, directory: VMRuntimeDirectory(path: root + "/m-dst"), mode: .incoming,
                                                     options: options)
        defer { destination.kill() }
        // What the source agent does at QEMU's STOP (SourceRun): pause the port, and keep
        // QEMU's timestamp of the STOP for the freeze.
        let events = source.qmp.events()
        let paused = Task { () -> Double? in
            for await event in events where event.name == "STOP" {
                do { try await a.pausePort(portM.id) } catch { return nil }
                return event.timestamp > 0 ? event.timestamp : nil
            }
            return nil
        }
        let before = Guests.tcpEchoes(peer.directory.readConsole())?.ok ?? 0
        var settings = MigrationSettings()
        settings.maxBandwidthBytesPerSecond = 10_000_000_000
        // The agents' order (Protocol.md §8.6 steps 3-5): the destination loads the guest and
        // keeps it stopped; the source freezes its port for B (what it held, copies of what it
        // handed QEMU since the STOP, and every later frame go to B at once) and sends the final
        // delta; B applies it, activates the port and only then resumes the guest (`cont`), so
        // what the guest sends at once meets an active port; then A forwards stragglers.
        let incoming = IncomingMigration(qmp: destination.qmp, settings: settings)
        try await incoming.listen(on: "unix:" + destination.directory.incomingSocket)
        let result = try await OutgoingMigration(qmp: source.qmp, settings: settings).run(to: "unix:" + destination.directory.incomingSocket)
        try await incoming.waitUntilLoaded()
        let stoppedAt = await paused.value
        #expect(stoppedAt != nil, "the port was paused at QEMU's STOP")
        let final = try await a.freezePort(portM.id, destination: "host-b", guestStoppedAt: stoppedAt)
        try await b.applyPortDelta(final)
        try await b.activatePort(portM.id)
        #expect(await b.portStatus(portM.id)?.lifecycle == .active, "B's port is active before the guest resumes")
        try await destination.qmp.cont()
        await b.guestRunning(portM.id)
        await source.stop(quitGrace: .seconds(2))
        try await a.forwardStragglers(portM.id, to: "host-b", grace: .seconds(5))

        var console = ""
        let continued = await eventually(timeout: .seconds(30)) {
            console = peer.directory.readConsole()
            return (Guests.tcpEchoes(console)?.ok ?? 0) >= before + 40
        }
        #expect(continued, "peer: \(console.suffix(600))")
        #expect(Guests.tcpEchoes(console)?.connections == 1, "the peer's TCP connection survived")
        #expect(!console.contains("TCP 10.77.0.3:7 error"), "every echo came back intact")

        var counters: [HostID: SwitchCounters] = [:]
        for s in switches { counters[s.configuration.hostID] = await s.counters().switch }
        let portOnB = try #require(await b.counters(of: portM.id))
        let heldOnA = counters["host-a"]?.heldFramesQueued ?? 0, forwarded = counters["host-a"]?.heldFramesForwarded ?? 0
        let heldOnB = counters["host-b"]?.heldFramesQueued ?? 0
        for (host, counter) in counters {
            #expect(counter.heldFramesDropped == 0 && counter.toInactivePort == 0, "\(host) dropped frames for the moving VM: \(counter)")
        }
        #expect(portOnB[.guestBusy] == 0 && portOnB[.guestUnreachable] == 0, "\(portOnB)")
        #expect(forwarded >= heldOnA, "everything A held went to B (and what came after the freeze, at once)")
        let tcp = console.split(whereSeparator: \.isNewline).last { $0.hasPrefix("TCP 10.77.0.3:7 conn=") } ?? ""
        let ping = console.split(whereSeparator: \.isNewline).last { $0.hasPrefix("PING 10.77.0.3") } ?? ""

        relay.cancel()
        await destination.stop(quitGrace: .seconds(1))
        await peer.stop(quitGrace: .seconds(1))
        for s in switches { await s.stop() }
        print("switchover with held frames: QEMU downtime \(result.downtimeMs) ms; held on A \(heldOnA) (forwarded \(forwarded), "
            + "of them copies \(counters["host-a"]?.heldFramesCopied ?? 0)), held on B \(heldOnB), dropped 0; peer: \(tcp); \(ping)")
    }
}
