import NIOCore
import Testing
@testable import VirtualSwitch

/// A stretched link's gateway (Protocol.md §8.9): `host-a` of lab is linked to `node-1@prod`
/// on segment 100; `host-c` is another host of lab. Unicast crosses between the domain and the
/// link through the gateway, once, and never loops; the link peer hears lab's locations as the
/// gateway's.
@Suite("Switch core: stretched link gateway")
struct GatewayRelayTests {
    static let peer: HostID = "node-1@prod"

    func gateway() -> CoreFixture {
        var f = CoreFixture()
        f.core.setLink(Self.peer, segments: [100])
        // The VM that moved is behind the link; a peer VM of lab is on host-c.
        _ = f.core.onLocations([MACLocation(mac: .test(20), segment: 100, host: Self.peer, sequence: 5),
                                MACLocation(mac: .test(30), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        return f
    }

    @Test func unicastFromTheDomainGoesOntoTheLinkAndFromTheLinkIntoTheDomainOnce() {
        var f = gateway()
        let toMoved = TestFrames.icmpEcho(from: .test(30), to: .test(20), src: .test(30), dst: .test(20))
        let out = f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: toMoved, forwarded: false, now: .origin)
        #expect(out.overlaySends.map(\.0) == [Self.peer] && out.overlaySends.map(\.1) == [true], "relayed onto the link, marked forwarded")
        let back = TestFrames.icmpEcho(from: .test(20), to: .test(30), src: .test(20), dst: .test(30))
        let reply = f.core.onFrameFromOverlay(from: Self.peer, segment: 100, frame: back, forwarded: false, now: .origin)
        #expect(reply.overlaySends.map(\.0) == ["host-c"] && reply.overlaySends.map(\.1) == [true], "relayed into lab, marked forwarded")
        #expect(f.core.counters.gatewayRelayed == 2)
    }

    @Test func nothingLoopsOrCrossesWhatIsNotStretched() {
        var f = gateway()
        _ = f.core.onLocations([MACLocation(mac: .test(40), segment: 100, host: "host-d", sequence: 1)], from: .gossip, now: .origin)
        let toMoved = TestFrames.icmpEcho(from: .test(30), to: .test(20), src: .test(30), dst: .test(20))
        // Already forwarded once by a host of lab: not relayed again.
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: toMoved, forwarded: true, now: .origin).overlaySends.isEmpty)
        // Between two hosts of lab: split horizon as ever.
        let domainToDomain = TestFrames.icmpEcho(from: .test(30), to: .test(40), src: .test(30), dst: .test(40))
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: domainToDomain, forwarded: false, now: .origin).overlaySends.isEmpty)
        // From the link back to the link.
        #expect(f.core.onFrameFromOverlay(from: Self.peer, segment: 100, frame: toMoved, forwarded: false, now: .origin).overlaySends.isEmpty)
        // A segment the link does not carry.
        try! f.core.addNetwork(Network(name: "other", segment: 200))
        _ = f.core.onLocations([MACLocation(mac: .test(21), segment: 200, host: Self.peer, sequence: 1)], from: .gossip, now: .origin)
        let unstretched = TestFrames.icmpEcho(from: .test(30), to: .test(21), src: .test(30), dst: .test(21))
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 200, frame: unstretched, forwarded: false, now: .origin).overlaySends.isEmpty)
        // Broadcasts are not relayed (only the two linked hosts share them).
        let broadcast = TestFrames.arpRequest(from: .test(30), ip: .test(30), asking: .test(20))
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: broadcast, forwarded: false, now: .origin).overlaySends.isEmpty)
        // The link gone: nothing relayed any more.
        f.core.forgetHost(Self.peer)
        #expect(f.core.onFrameFromOverlay(from: Self.peer, segment: 100,
                                          frame: TestFrames.icmpEcho(from: .test(20), to: .test(30), src: .test(20), dst: .test(30)),
                                          forwarded: false, now: .origin).overlaySends.isEmpty)
        #expect(f.core.counters.gatewayRelayed == 0)
    }

    @Test func theLinkPeerHearsTheDomainsLocationChangesOnStretchedSegments() {
        var f = gateway()
        let moved = MACLocation(mac: .test(30), segment: 100, host: "host-d", sequence: 2)
        let elsewhere = MACLocation(mac: .test(31), segment: 300, host: "host-d", sequence: 1)
        let fromPeer = MACLocation(mac: .test(22), segment: 100, host: Self.peer, sequence: 1)
        let out = f.core.onLocations([moved, elsewhere, fromPeer], from: .gossip, now: .origin)
        let sent = out.compactMap { if case let .sendLocations(locations, hosts) = $0 { return (locations, hosts) } else { return nil } }
        #expect(sent.count == 1 && sent.first?.0 == [moved] && sent.first?.1 == [Self.peer],
                "only the domain's change on the linked segment, to the link peer (the shell names it as the gateway's)")
        // A stale update changes nothing and is not passed on.
        let stale = f.core.onLocations([MACLocation(mac: .test(30), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        #expect(!stale.contains { if case .sendLocations = $0 { true } else { false } })
    }
}

/// What a host of the other domain cannot do through a link (review findings on §8.9).
@Suite("Switch core: stretched link limits")
struct GatewayLimitTests {
    @Test func aFloodedCopyIsNotRelayedByTheGateway() {
        var f = GatewayRelayTests().gateway()
        let toMoved = TestFrames.icmpEcho(from: .test(30), to: .test(20), src: .test(30), dst: .test(20))
        #expect(f.core.onFrameFromOverlay(from: "host-c", segment: 100, frame: toMoved, forwarded: false, flooded: true, now: .origin)
            .overlaySends.isEmpty, "every gateway got a flooded copy: none relays it")
        // Unknown unicast from a local VM is flooded with the flag.
        f.addPort(1)
        let unknown = TestFrames.icmpEcho(from: .test(1), to: .test(99), src: .test(1), dst: .test(99))
        let flooded = f.core.onFrameFromPort("vm1/eth0", frame: unknown, now: .origin)
        #expect(!flooded.isEmpty && flooded.allSatisfy { if case let .sendFrame(_, _, _, _, isFlooded) = $0 { isFlooded } else { true } })
    }

    @Test func aLinkPeerTakesOnlyAMACThatIsMovingToIt() {
        var f = CoreFixture()
        f.core.setLink(GatewayRelayTests.peer, segments: [100])
        f.addPort(1)
        _ = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: .test(2)), now: .origin)
        _ = f.core.onLocations([MACLocation(mac: .test(30), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        // A claim of this host's active VM or of host-c's VM is refused.
        let own = f.core.locationEntries.first { $0.location.mac == .test(1) }?.location.sequence ?? 0
        _ = f.core.onLocations([MACLocation(mac: .test(1), segment: 100, host: GatewayRelayTests.peer, sequence: own + 1),
                                MACLocation(mac: .test(30), segment: 100, host: GatewayRelayTests.peer, sequence: 2)],
                               from: .direct(GatewayRelayTests.peer), now: .origin)
        #expect(f.core.locationEntries.filter { $0.location.host == GatewayRelayTests.peer }.isEmpty)
        #expect(f.core.counters.locationsRefused == 2)
        // Its own new MAC is accepted.
        _ = f.core.onLocations([MACLocation(mac: .test(50), segment: 100, host: GatewayRelayTests.peer, sequence: 1)],
                               from: .direct(GatewayRelayTests.peer), now: .origin)
        #expect(f.core.locationEntries.contains { $0.location.mac == .test(50) && $0.location.host == GatewayRelayTests.peer })
        // The VM here moving to the peer: frozen for it, its claim is accepted.
        _ = try? f.core.freezePort("vm1/eth0", destination: GatewayRelayTests.peer, now: .origin) // the port is active: it freezes
        _ = f.core.onLocations([MACLocation(mac: .test(1), segment: 100, host: GatewayRelayTests.peer, sequence: own + 1)],
                               from: .direct(GatewayRelayTests.peer), now: .origin)
        #expect(f.core.locationEntries.contains { $0.location.mac == .test(1) && $0.location.host == GatewayRelayTests.peer })
    }

    @Test func aSequenceNearTheTopIsRefusedAndAClaimNeverOverflows() {
        var f = CoreFixture()
        f.addPort(1)
        _ = f.core.onLocations([MACLocation(mac: .test(1), segment: 100, host: "host-c", sequence: .max)], from: .gossip, now: .origin)
        #expect(f.core.counters.locationsRefused == 1)
        // The VM's next frame claims its MAC as usual (no trap).
        _ = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: .test(2)), now: .origin)
        #expect(f.core.locationEntries.contains { $0.location.mac == .test(1) && $0.location.host == "host-a" })
    }
}
