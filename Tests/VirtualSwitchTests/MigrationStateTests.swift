import NIOCore
import Testing
@testable import VirtualSwitch

/// Port states for migration (blocked, activation, frozen, straggler forwarding) and the port
/// state record's export and import.
@Suite("Switch core: port state at migration")
struct MigrationStateTests {
    func published(_ directives: [SwitchDirective]) -> [MACLocation] {
        directives.events.flatMap { if case let .publish(l) = $0 { return l } else { return [] } }
    }

    @Test func aBlockedPortPassesNothingUntilTheVMsRARPActivatesIt() throws {
        var f = CoreFixture(host: "host-b")
        f.addPort(2)
        // The VM lived on host-a with sequence 4; host-c has another VM on the segment.
        _ = f.core.onLocations([MACLocation(mac: .test(1), segment: 100, host: "host-a", sequence: 4, ips: [.test(1)]),
                                MACLocation(mac: .test(3), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        #expect(f.addPort(1, state: .blocked(activationDeadline: nil)).isEmpty, "a blocked port claims nothing")
        #expect(f.core.status(of: "vm1/eth0")?.lifecycle == .blocked)

        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .origin).isEmpty)
        #expect(f.core.counters(of: "vm1/eth0")?[.portBlocked] == 1)
        // A local peer's frames for the VM go where it still runs (pre-copy), not to the
        // blocked port: the peer must not lose it for the whole migration.
        let toBlocked = TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1))
        let sent = f.core.onFrameFromPort("vm2/eth0", frame: toBlocked, now: .origin)
        #expect(sent.deliveredPorts.isEmpty)
        #expect(sent.overlayHosts == ["host-a"])
        #expect(f.core.counters.toInactivePort == 0)

        let out = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(1)), now: .at(seconds: 1))
        let location = MACLocation(mac: .test(1), segment: 100, host: "host-b", sequence: 5, ips: [.test(1)])
        #expect(out.events.contains(.portActivated("vm1/eth0", location: location)))
        let push = try #require(out.locationPushes.first)
        #expect(push.0 == [location])
        #expect(push.1 == ["host-a", "host-c"], "the previous owner and the hosts with ports on the segment, directly")
        #expect(published(out) == [location], "and to the whole mesh by gossip")
        #expect(f.core.status(of: "vm1/eth0")?.lifecycle == .active)
        #expect(f.core.location(of: .test(1), segment: 100)?.location == location)
        // Now it forwards, and the local peer's frames reach it here.
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .at(seconds: 1)).deliveredPorts == ["vm2/eth0"])
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: toBlocked, now: .at(seconds: 1)).deliveredPorts == ["vm1/eth0"])
    }

    @Test func aGratuitousARPFromTheVMActivatesItButNotFromAnotherAddress() throws {
        var f = CoreFixture()
        f.addPort(1, state: .blocked(activationDeadline: nil))
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.gratuitousARP(from: .test(1), ip: .test(9)), now: .origin).events.isEmpty)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(7)), now: .origin).events.isEmpty)
        let out = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.gratuitousARP(from: .test(1), ip: .test(1)), now: .origin)
        #expect(out.events.contains(.portActivated("vm1/eth0", location: MACLocation(mac: .test(1), segment: 100, host: "host-a",
                                                                                     sequence: 1, ips: [.test(1)]))))
    }

    @Test func aBlockedPortPastItsDeadlineIsReportedOnce() {
        var f = CoreFixture()
        f.addPort(1, state: .blocked(activationDeadline: .at(seconds: 5)))
        #expect(f.core.onTick(now: .at(seconds: 4)).events.isEmpty)
        #expect(f.core.onTick(now: .at(seconds: 5)).events == [.activationTimedOut("vm1/eth0")])
        #expect(f.core.onTick(now: .at(seconds: 6)).events.isEmpty)
        #expect(f.core.status(of: "vm1/eth0")?.lifecycle == .blocked)
    }

    @Test func theActivationDeadlineIsArmedWhenTheVMResumesNotAtImport() throws {
        var f = CoreFixture()
        // Imported during pre-copy with no deadline: a long pre-copy never times it out.
        f.addPort(1, state: .blocked(activationDeadline: nil))
        #expect(f.core.onTick(now: .at(seconds: 600)).events.isEmpty)
        // The VM resumed at 600 s: 10 s to announce itself.
        _ = try f.core.armActivation("vm1/eth0", deadline: .at(seconds: 610))
        #expect(f.core.onTick(now: .at(seconds: 609)).events.isEmpty)
        #expect(f.core.onTick(now: .at(seconds: 610)).events == [.activationTimedOut("vm1/eth0")])
        // Arming an active port changes nothing.
        _ = try f.core.activatePort("vm1/eth0", now: .at(seconds: 611))
        #expect(try f.core.armActivation("vm1/eth0", deadline: .at(seconds: 612)).isEmpty)
        #expect(f.core.onTick(now: .at(seconds: 620)).events.isEmpty)
        #expect(f.core.status(of: "vm1/eth0")?.lifecycle == .active)
    }

    @Test func aFrozenPortPassesNothingAndItsCountersStayFinal() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        _ = f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .origin)
        _ = try f.core.exportPortState("vm1/eth0", now: .origin)
        let final = try f.core.freezePort("vm1/eth0", now: .origin)
        #expect(final.isFinal)
        #expect(final.counters == f.core.counters(of: "vm1/eth0"))
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .origin).isEmpty)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1)),
                                       now: .origin).deliveredPorts.isEmpty)
        #expect(f.core.counters(of: "vm1/eth0") == final.counters)
        #expect(throws: SwitchError.wrongState("vm1/eth0", is: .frozen, operation: "freeze")) { try f.core.freezePort("vm1/eth0", now: .origin) }
        // Rolled back, it forwards again.
        _ = try f.core.unfreezePort("vm1/eth0", now: .origin)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .origin).deliveredPorts == ["vm2/eth0"])
    }

    @Test func stragglersAreForwardedOnceToTheNewHostUntilTheGraceEnds() throws {
        var f = CoreFixture(host: "host-a")
        f.addPort(1)
        f.addPort(2)
        _ = try f.core.freezePort("vm1/eth0", now: .origin)
        _ = try f.core.forwardStragglers("vm1/eth0", to: "host-b", grace: .seconds(2), now: .origin)
        let fromPeer = TestFrames.icmpEcho(from: .test(3), to: .test(1), src: .test(3), dst: .test(1))
        let out = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: fromPeer, forwarded: false, now: .at(seconds: 1))
        #expect(out.overlaySends.map(\.0) == ["host-b"])
        #expect(out.overlaySends.map(\.1) == [true], "marked forwarded")
        let fromLocal = TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1))
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: fromLocal, now: .at(seconds: 1)).overlayHosts == ["host-b"])
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: fromPeer, forwarded: true, now: .at(seconds: 1)).isEmpty,
                "never forwarded twice")
        #expect(f.core.counters.stragglersForwarded == 2)
        // The VM moved on from host-b to host-d within the grace period: follow it there (a
        // local peer would otherwise lose it until the grace ends).
        _ = f.core.onLocations([MACLocation(mac: .test(1), segment: 100, host: "host-d", sequence: 9, ips: [.test(1)])],
                               from: .gossip, now: .at(seconds: 1.2))
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: fromLocal, now: .at(seconds: 1.2)).overlayHosts == ["host-d"])
        #expect(f.core.onTick(now: .at(seconds: 1.5)).events.isEmpty)
        #expect(f.core.onTick(now: .at(seconds: 2)).events == [.portRemoved("vm1/eth0")])
        #expect(f.core.status(of: "vm1/eth0") == nil)
    }

    /// The whole move of a port whose firewall admits only replies to its own connections:
    /// source A, destination B, a peer VM on C.
    @Test func aPortMovesWithItsConnectionsCountersAndLocation() throws {
        let policy = SecurityPolicy(ingress: .rules([]), looseTCPPickup: false)
        var a = CoreFixture(host: "host-a"), b = CoreFixture(host: "host-b"), c = CoreFixture(host: "host-c")
        let claimed = a.addPort(1, policy: policy)
        let peer = c.addPort(3)
        _ = b.core.onLocations(published(claimed) + published(peer), from: .gossip, now: .origin)
        _ = c.core.onLocations(published(claimed), from: .gossip, now: .origin)
        _ = a.core.onLocations(published(peer), from: .gossip, now: .origin)

        // VM1 opens a TCP connection to VM3 (through the overlay), VM3 answers.
        let syn = TestFrames.tcp(from: .test(1), to: .test(3), src: .test(1), sport: 40000, dst: .test(3), dport: 7, flags: 0x02)
        #expect(a.core.onFrameFromPort("vm1/eth0", frame: syn, now: .at(seconds: 1)).overlayHosts == ["host-c"])
        let synAck = TestFrames.tcp(from: .test(3), to: .test(1), src: .test(3), sport: 7, dst: .test(1), dport: 40000, flags: 0x12)
        #expect(c.core.onFrameFromPort("vm3/eth0", frame: synAck, now: .at(seconds: 1)).overlayHosts == ["host-a"])
        #expect(a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: synAck, forwarded: false, now: .at(seconds: 1))
            .deliveredPorts == ["vm1/eth0"])

        // Pre-copy: bulk export, through protobuf, imported blocked at B.
        let record = try a.core.exportPortState("vm1/eth0", now: .at(seconds: 2))
        #expect(record.connections.count == 1)
        #expect(record.mobilitySequence == 1)
        let decoded = try PortStateRecord(serializedBytes: record.serializedBytes())
        #expect(decoded == record)
        try b.core.importPort(decoded, activationDeadline: .at(seconds: 60), now: .at(seconds: 2))
        #expect(b.core.status(of: "vm1/eth0")?.lifecycle == .blocked)
        #expect(b.core.status(of: "vm1/eth0")?.connections == 1)

        // More traffic at the source: a second connection (a UDP flow), then a delta.
        let udp = TestFrames.udp(from: .test(1), to: .test(3), src: .test(1), sport: 5000, dst: .test(3), dport: 9)
        _ = a.core.onFrameFromPort("vm1/eth0", frame: udp, now: .at(seconds: 3))
        let delta = try a.core.exportPortDelta("vm1/eth0", now: .at(seconds: 3))
        #expect(delta.fromGeneration == record.generation)
        #expect(delta.upserts.map(\.key.proto) == [IPProtocol.udp])
        try b.core.applyPortDelta(PortStateDelta(serializedBytes: delta.serializedBytes()), now: .at(seconds: 3))

        // Switchover: freeze, final delta (the TCP connection was used again), activation.
        _ = a.core.onFrameFromPort("vm1/eth0", frame: syn, now: .at(seconds: 4))
        let final = try a.core.freezePort("vm1/eth0", now: .at(seconds: 4))
        #expect(final.isFinal && final.fromGeneration == delta.toGeneration)
        #expect(final.upserts.map(\.key.proto) == [IPProtocol.tcp])
        try b.core.applyPortDelta(PortStateDelta(serializedBytes: final.serializedBytes()), now: .at(seconds: 4))
        #expect(b.core.counters(of: "vm1/eth0") == a.core.counters(of: "vm1/eth0"), "counters carried over")
        #expect(throws: SwitchError.self) { try b.core.applyPortDelta(delta, now: .at(seconds: 4)) }

        let activation = b.core.onFrameFromPort("vm1/eth0", frame: TestFrames.rarp(from: .test(1)), now: .at(seconds: 4.1))
        let location = MACLocation(mac: .test(1), segment: 100, host: "host-b", sequence: 2, ips: [.test(1)])
        #expect(activation.events.contains(.portActivated("vm1/eth0", location: location)))
        #expect(activation.locationPushes.first?.1 == ["host-a", "host-c"])
        #expect((b.core.counters(of: "vm1/eth0")?.rxFrames ?? 0) > (a.core.counters(of: "vm1/eth0")?.rxFrames ?? 0), "never decreases")

        // A hears it (its port becomes a straggler forwarder); C has not heard yet.
        #expect(a.core.onLocations([location], from: .direct("host-b"), now: .at(seconds: 4.1)).events.isEmpty, "expected, not lost")
        _ = try a.core.forwardStragglers("vm1/eth0", to: "host-b", now: .at(seconds: 4.1))
        let late = a.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: synAck, forwarded: false, now: .at(seconds: 4.2))
        let straggler = try #require(late.overlaySends.first)
        #expect(straggler.0 == "host-b" && straggler.1)
        // B delivers it: the reply to VM1's own connection passes the deny-all ingress policy.
        #expect(b.core.onFrameFromOverlay(from: "host-a", segment: 100, frame: synAck, forwarded: true, now: .at(seconds: 4.2))
            .deliveredPorts == ["vm1/eth0"])
        // C learns the new location and sends straight to B.
        _ = c.core.onLocations([location], from: .direct("host-b"), now: .at(seconds: 4.2))
        #expect(c.core.onFrameFromPort("vm3/eth0", frame: synAck, now: .at(seconds: 4.3)).overlayHosts == ["host-b"])
        // A new connection towards VM1 is still refused at B.
        let intruder = TestFrames.tcp(from: .test(3), to: .test(1), src: .test(3), sport: 9999, dst: .test(1), dport: 22, flags: 0x02)
        #expect(b.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: intruder, forwarded: false, now: .at(seconds: 4.3))
            .deliveredPorts.isEmpty)
    }

    @Test func deltasTrackRemovalsAndResyncWhenTheBaseIsUnknown() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        let out = TestFrames.udp(from: .test(1), to: .test(2), src: .test(1), sport: 4000, dst: .test(2), dport: 9)
        _ = f.core.onFrameFromPort("vm1/eth0", frame: out, now: .origin)
        let record = try f.core.exportPortState("vm1/eth0", now: .origin)
        _ = f.core.onTick(now: .at(seconds: 60))
        let delta = try f.core.exportPortDelta("vm1/eth0", now: .at(seconds: 60))
        #expect(delta.upserts.isEmpty)
        #expect(delta.removals.map(\.localPort) == [4000])
        let unknown = try f.core.exportPortDelta("vm1/eth0", since: record.generation + 100, now: .at(seconds: 60))
        #expect(unknown.fullResync)

        var g = CoreFixture(host: "host-b")
        try g.core.importPort(record, now: .origin)
        try g.core.applyPortDelta(delta, now: .at(seconds: 60))
        #expect(g.core.status(of: "vm1/eth0")?.connections == 0)
    }

    @Test func importMapsTheNetworkByNameAndRejectsUnknownNetworks() throws {
        var source = CoreFixture()
        source.addPort(1)
        let record = try source.core.exportPortState("vm1/eth0", now: .origin)
        var mapped = SwitchCore(localHost: "host-x")
        try mapped.addNetwork(Network(name: "net", segment: 4242))
        try mapped.importPort(record, now: .origin)
        #expect(mapped.status(of: "vm1/eth0")?.segment == 4242)
        var lacking = SwitchCore(localHost: "host-y")
        #expect(throws: SwitchError.unknownNetwork("net")) { try lacking.importPort(record, now: .origin) }
    }
}
