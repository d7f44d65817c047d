import NIOCore
import Testing
@testable import VirtualSwitch

/// Local switching, flooding and proxy ARP in the pure core.
@Suite("Switch core: forwarding")
struct SwitchingTests {
    @Test func unicastBetweenTwoLocalPortsOfOneSegment() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        f.addPort(3)
        let frame = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        let out = f.core.onFrameFromPort("vm1/eth0", frame: frame, now: .origin)
        #expect(out.deliveredPorts == ["vm2/eth0"])
        #expect(out.delivered(to: "vm2/eth0").first == frame)
        #expect(f.core.counters(of: "vm1/eth0")?.rxFrames == 1)
        #expect(f.core.counters(of: "vm1/eth0")?.rxBytes == UInt64(frame.readableBytes))
        #expect(f.core.counters(of: "vm2/eth0")?.txFrames == 1)
        #expect(f.core.counters(of: "vm3/eth0")?.txFrames == 0)
    }

    @Test func portsOfAnotherSegmentNeverSeeTheFrame() throws {
        var f = CoreFixture()
        try f.core.addNetwork(Network(name: "other", segment: 200))
        f.addPort(1)
        _ = try f.core.createPort(PortConfiguration(id: "vm9/eth0", network: "other", mac: .test(9), allowedIPs: [IPPrefix(host: .test(9))]),
                                  now: .origin)
        let broadcast = TestFrames.udp(from: .test(1), to: .broadcast, src: .test(1), sport: 68, dst: .broadcastV4, dport: 67)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: broadcast, now: .origin).deliveredPorts.isEmpty)
        let unicast = TestFrames.icmpEcho(from: .test(1), to: .test(9), src: .test(1), dst: .test(9))
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: unicast, now: .origin).deliveredPorts.isEmpty)
    }

    @Test func broadcastFloodsLocalPortsAndRemoteHostsOfTheSegment() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        f.addPort(3)
        _ = f.core.onLocations([MACLocation(mac: .test(10), segment: 100, host: "host-b", sequence: 1),
                                MACLocation(mac: .test(11), segment: 100, host: "host-c", sequence: 1),
                                MACLocation(mac: .test(12), segment: 999, host: "host-d", sequence: 1)], from: .gossip, now: .origin)
        let broadcast = TestFrames.udp(from: .test(1), to: .broadcast, src: .test(1), sport: 5000, dst: .broadcastV4, dport: 5000)
        let out = f.core.onFrameFromPort("vm1/eth0", frame: broadcast, now: .origin)
        #expect(out.deliveredPorts == ["vm2/eth0", "vm3/eth0"])
        #expect(out.overlayHosts == ["host-b", "host-c"], "hosts with MACs on segment 100 only")
    }

    @Test func unknownUnicastIsFloodedAndKnownRemoteUnicastGoesToItsHost() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        _ = f.core.onLocations([MACLocation(mac: .test(10), segment: 100, host: "host-b", sequence: 3),
                                MACLocation(mac: .test(11), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        let toUnknown = TestFrames.icmpEcho(from: .test(1), to: .test(77), src: .test(1), dst: .test(77))
        let flooded = f.core.onFrameFromPort("vm1/eth0", frame: toUnknown, now: .origin)
        #expect(flooded.deliveredPorts == ["vm2/eth0"])
        #expect(flooded.overlayHosts == ["host-b", "host-c"])

        let toRemote = TestFrames.icmpEcho(from: .test(1), to: .test(10), src: .test(1), dst: .test(10))
        let sent = f.core.onFrameFromPort("vm1/eth0", frame: toRemote, now: .origin)
        #expect(sent.deliveredPorts.isEmpty)
        #expect(sent.overlaySends.map(\.0) == ["host-b"])
        #expect(sent.overlaySends.map(\.1) == [false])
    }

    @Test func overlayFramesAreDeliveredLocallyAndNeverSentBackToTheOverlay() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        _ = f.core.onLocations([MACLocation(mac: .test(10), segment: 100, host: "host-b", sequence: 1),
                                MACLocation(mac: .test(11), segment: 100, host: "host-c", sequence: 1)], from: .gossip, now: .origin)
        let broadcast = TestFrames.arpRequest(from: .test(10), ip: .test(10), asking: .test(99))
        let out = f.core.onFrameFromOverlay(from: "host-b", segment: 100, frame: broadcast, forwarded: false, now: .origin)
        #expect(out.deliveredPorts == ["vm1/eth0", "vm2/eth0"])
        #expect(out.overlayHosts.isEmpty, "split horizon")

        let unicast = TestFrames.icmpEcho(from: .test(10), to: .test(2), src: .test(10), dst: .test(2))
        #expect(f.core.onFrameFromOverlay(from: "host-b", segment: 100, frame: unicast, forwarded: false, now: .origin).deliveredPorts == ["vm2/eth0"])
        let stray = TestFrames.icmpEcho(from: .test(10), to: .test(55), src: .test(10), dst: .test(55))
        #expect(f.core.onFrameFromOverlay(from: "host-b", segment: 100, frame: stray, forwarded: false, now: .origin).isEmpty)
        #expect(f.core.onFrameFromOverlay(from: "host-b", segment: 555, frame: unicast, forwarded: false, now: .origin).isEmpty)
        #expect(f.core.counters.noLocalDestination == 1)
        #expect(f.core.counters.unknownSegment == 1)
    }

    @Test func proxyARPAnswersFromLocalAndRemoteBindingsAndFloodsOtherwise() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        _ = f.core.onLocations([MACLocation(mac: .test(10), segment: 100, host: "host-b", sequence: 1, ips: [.test(10)])],
                               from: .gossip, now: .origin)
        for (target, mac) in [(IPAddress.test(2), MACAddress.test(2)), (.test(10), .test(10))] {
            let out = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: target), now: .origin)
            let reply = try #require(out.delivered(to: "vm1/eth0").first, "answered for \(target)")
            #expect(out.deliveredPorts == ["vm1/eth0"], "not flooded")
            #expect(out.overlayHosts.isEmpty)
            let arp = try #require(ARPPacket(frame: reply))
            #expect(arp.operation == ARPPacket.reply)
            #expect(arp.senderMAC == mac)
            #expect(arp.senderIP == target)
            #expect(arp.targetMAC == .test(1))
            #expect(EthernetHeader(reply)?.destination == .test(1))
        }
        let unknown = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: .test(50)), now: .origin)
        #expect(unknown.deliveredPorts == ["vm2/eth0"])
        #expect(unknown.overlayHosts == ["host-b"])
    }

    @Test func learnedAddressesInsideAPrefixAreBoundAndAnnounced() throws {
        var f = CoreFixture()
        f.addPort(1, allowed: [IPPrefix("10.77.0.0/24")!])
        f.addPort(2)
        _ = f.core.onLocations([MACLocation(mac: .test(10), segment: 100, host: "host-b", sequence: 1)], from: .gossip, now: .origin)
        let out = f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.gratuitousARP(from: .test(1), ip: .test(42)), now: .origin)
        #expect(f.core.status(of: "vm1/eth0")?.learnedIPs == [.test(42)])
        let push = try #require(out.locationPushes.first)
        #expect(push.0.first?.ips == [.test(42)])
        #expect(push.1 == ["host-b"])
        let asked = f.core.onFrameFromPort("vm2/eth0", frame: TestFrames.arpRequest(from: .test(2), ip: .test(2), asking: .test(42)), now: .origin)
        #expect(asked.delivered(to: "vm2/eth0").compactMap { ARPPacket(frame: $0)?.senderMAC } == [.test(1)])
    }

    @Test func networksAndPortsAreValidated() throws {
        var f = CoreFixture()
        #expect(throws: SwitchError.segmentInUse(100, network: "net")) { try f.core.addNetwork(Network(name: "b", segment: 100)) }
        #expect(throws: SwitchError.invalidSegment(0)) { try f.core.addNetwork(Network(name: "c", segment: 0)) }
        f.addPort(1)
        #expect(throws: SwitchError.portExists("vm1/eth0")) { try f.core.createPort(CoreFixture.port(1), now: .origin) }
        var sameMAC = CoreFixture.port(1)
        sameMAC.id = "other"
        #expect(throws: SwitchError.macInUse(.test(1), segment: 100, port: "vm1/eth0")) { try f.core.createPort(sameMAC, now: .origin) }
        var multicast = CoreFixture.port(5)
        multicast.mac = MACAddress("01:00:5e:00:00:01")!
        #expect(throws: SwitchError.invalidMAC(multicast.mac)) { try f.core.createPort(multicast, now: .origin) }
        #expect(throws: SwitchError.networkInUse("net", ports: ["vm1/eth0"])) { try f.core.removeNetwork(named: "net") }
        print(SwitchError.macInUse(.test(1), segment: 100, port: "vm1/eth0"))
    }
}
