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
