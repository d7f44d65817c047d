import MeshTime
import NIOCore
import Testing
@testable import VirtualSwitch

/// Anti-spoofing, the stateful firewall and its connection tracking.
@Suite("Switch core: security policy")
struct SecurityTests {
    @Test func spoofedSourceMACOrIPIsDroppedAndCounted() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2)
        let forgedMAC = TestFrames.icmpEcho(from: .test(66), to: .test(2), src: .test(1), dst: .test(2))
        let forgedIP = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(66), dst: .test(2))
        let forgedARP = TestFrames.gratuitousARP(from: .test(1), ip: .test(2))
        let arpWrongSender = ARPPacket(operation: ARPPacket.request, senderMAC: .test(66), senderIP: .test(1), targetMAC: .zero, targetIP: .test(2))
            .frame(destination: .broadcast, source: .test(1))
        let lldp = TestFrames.ethernet(from: .test(1), to: MACAddress("01:80:c2:00:00:0e")!, etherType: 0x88CC, payload: [UInt8](repeating: 0, count: 46))
        for frame in [forgedMAC, forgedIP, forgedARP, arpWrongSender, lldp] {
            #expect(f.core.onFrameFromPort("vm1/eth0", frame: frame, now: .origin).deliveredPorts.isEmpty)
        }
        let counters = try #require(f.core.counters(of: "vm1/eth0"))
        #expect(counters[.macSpoofed] == 2)
        #expect(counters[.ipSpoofed] == 2)
        #expect(counters[.etherTypeNotAllowed] == 1)
        #expect(counters.rxFrames == 5, "dropped frames were received")
        #expect(f.core.counters(of: "vm2/eth0")?.txFrames == 0)

        // The genuine frame passes.
        let genuine = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2))
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: genuine, now: .origin).deliveredPorts == ["vm2/eth0"])
    }

    @Test func exemptionsForDHCPAndIPv6LinkLocalAndAnOpenPort() throws {
        var f = CoreFixture()
        f.addPort(1)
        f.addPort(2, policy: .open)
        let dhcp = TestFrames.udp(from: .test(1), to: .broadcast, src: .unspecifiedV4, sport: 68, dst: .broadcastV4, dport: 67)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: dhcp, now: .origin).deliveredPorts == ["vm2/eth0"])
        let notDHCP = TestFrames.udp(from: .test(1), to: .broadcast, src: .unspecifiedV4, sport: 68, dst: .broadcastV4, dport: 99)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: notDHCP, now: .origin).deliveredPorts.isEmpty)
        // The open port may send anything.
        let spoofed = TestFrames.icmpEcho(from: .test(66), to: .test(1), src: .test(66), dst: .test(1))
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: spoofed, now: .origin).deliveredPorts == ["vm1/eth0"])
        #expect(MACAddress.test(1).ipv6LinkLocal == IPAddress("fe80::5054:ff:fe00:1"))
    }

    @Test func ingressDenyAllStillAdmitsRepliesToTheVMsOwnConnections() throws {
        var f = CoreFixture()
        let policy = SecurityPolicy(ingress: .rules([]))
        f.addPort(1, policy: policy)
        f.addPort(2)
        // 2 -> 1: a new connection towards 1 is refused.
        let syn = TestFrames.tcp(from: .test(2), to: .test(1), src: .test(2), sport: 5555, dst: .test(1), dport: 22, flags: 0x02)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: syn, now: .origin).deliveredPorts.isEmpty)
        #expect(f.core.counters(of: "vm1/eth0")?[.ingressPolicy] == 1)
        // 1 -> 2:7 opens a connection; 2's replies reach 1.
        let out = TestFrames.tcp(from: .test(1), to: .test(2), src: .test(1), sport: 40000, dst: .test(2), dport: 7, flags: 0x02)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: out, now: .origin).deliveredPorts == ["vm2/eth0"])
        let reply = TestFrames.tcp(from: .test(2), to: .test(1), src: .test(2), sport: 7, dst: .test(1), dport: 40000, flags: 0x12)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: reply, now: .at(seconds: 1)).deliveredPorts == ["vm1/eth0"])
        let key = ConnectionKey(proto: IPProtocol.tcp, localIP: .test(1), localPort: 40000, remoteIP: .test(2), remotePort: 7)
        let tracked = try #require(f.core.connection(key, port: "vm1/eth0", now: .at(seconds: 3)))
        #expect(tracked.state == .established)
        #expect(tracked.origin == .egress)
        #expect(tracked.idleMilliseconds == 2000)
        // The same reply from another source port is not part of it.
        let other = TestFrames.tcp(from: .test(2), to: .test(1), src: .test(2), sport: 8, dst: .test(1), dport: 40000, flags: 0x12)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: other, now: .at(seconds: 1)).deliveredPorts.isEmpty)
        // Pings out are answered; pings in are refused.
        let ping = TestFrames.icmpEcho(from: .test(1), to: .test(2), src: .test(1), dst: .test(2), identifier: 9)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: ping, now: .origin).deliveredPorts == ["vm2/eth0"])
        let pong = TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1), reply: true, identifier: 9)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: pong, now: .origin).deliveredPorts == ["vm1/eth0"])
        let pingIn = TestFrames.icmpEcho(from: .test(2), to: .test(1), src: .test(2), dst: .test(1), identifier: 10)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: pingIn, now: .origin).deliveredPorts.isEmpty)
        #expect(f.core.counters(of: "vm1/eth0")?[.ingressPolicy] == 3)
    }

    @Test func strictTCPOpensConnectionsOnlyWithASynAndLooseTCPPicksThemUp() throws {
        var f = CoreFixture()
        f.addPort(1, policy: SecurityPolicy(looseTCPPickup: false))
        f.addPort(2)
        let midStream = TestFrames.tcp(from: .test(1), to: .test(2), src: .test(1), sport: 40000, dst: .test(2), dport: 7, flags: 0x18)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: midStream, now: .origin).deliveredPorts.isEmpty)
        #expect(f.core.counters(of: "vm1/eth0")?[.conntrackInvalid] == 1)
        let reply = TestFrames.tcp(from: .test(2), to: .test(1), src: .test(2), sport: 7, dst: .test(1), dport: 40000, flags: 0x18)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: reply, now: .origin).deliveredPorts.isEmpty)
        let syn = TestFrames.tcp(from: .test(1), to: .test(2), src: .test(1), sport: 40000, dst: .test(2), dport: 7, flags: 0x02)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: syn, now: .origin).deliveredPorts == ["vm2/eth0"])
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: reply, now: .origin).deliveredPorts == ["vm1/eth0"])
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: midStream, now: .origin).deliveredPorts == ["vm2/eth0"])

        var loose = CoreFixture()
        loose.addPort(1)
        loose.addPort(2)
        #expect(loose.core.onFrameFromPort("vm1/eth0", frame: midStream, now: .origin).deliveredPorts == ["vm2/eth0"])
        #expect(loose.core.onFrameFromPort("vm2/eth0", frame: reply, now: .origin).deliveredPorts == ["vm1/eth0"])
    }

    @Test func egressRulesAllowOnlyListedDestinations() throws {
        var f = CoreFixture()
        f.addPort(1, policy: SecurityPolicy(egress: .rules([.tcp(port: 7, from: IPPrefix("10.77.0.0/24")),
                                                            FirewallRule(proto: IPProtocol.udp, ports: 53...53)])))
        f.addPort(2)
        let allowed = TestFrames.tcp(from: .test(1), to: .test(2), src: .test(1), sport: 1000, dst: .test(2), dport: 7, flags: 0x02)
        let refused = TestFrames.tcp(from: .test(1), to: .test(2), src: .test(1), sport: 1001, dst: .test(2), dport: 8, flags: 0x02)
        let dns = TestFrames.udp(from: .test(1), to: .test(2), src: .test(1), sport: 3000, dst: .test(2), dport: 53)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: allowed, now: .origin).deliveredPorts == ["vm2/eth0"])
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: refused, now: .origin).deliveredPorts.isEmpty)
        #expect(f.core.onFrameFromPort("vm1/eth0", frame: dns, now: .origin).deliveredPorts == ["vm2/eth0"])
        #expect(f.core.counters(of: "vm1/eth0")?[.egressPolicy] == 1)
        // ARP is never filtered by the firewall.
        #expect(!f.core.onFrameFromPort("vm1/eth0", frame: TestFrames.arpRequest(from: .test(1), ip: .test(1), asking: .test(50)),
                                        now: .origin).deliveredPorts.isEmpty)
    }

    @Test func icmpErrorsAboutTrackedConnectionsAreRelated() throws {
        var f = CoreFixture()
        f.addPort(1, policy: SecurityPolicy(ingress: .rules([])))
        f.addPort(2)
        let probe = TestFrames.udp(from: .test(1), to: .test(2), src: .test(1), sport: 4000, dst: .test(2), dport: 9)
        _ = f.core.onFrameFromPort("vm1/eth0", frame: probe, now: .origin)
        // Port unreachable from 2, quoting 1's datagram (IPv4 header + 8 bytes).
        let quoted = Array(probe.getSlice(at: 14, length: 28)!.readableBytesView)
        let unreachable = TestFrames.ipv4(from: .test(2), to: .test(1), src: .test(2), dst: .test(1), proto: IPProtocol.icmp,
                                          transport: [3, 3, 0, 0, 0, 0, 0, 0] + quoted)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: unreachable, now: .origin).deliveredPorts == ["vm1/eth0"])
        // The same error about an untracked connection is refused.
        let otherProbe = TestFrames.udp(from: .test(1), to: .test(2), src: .test(1), sport: 4001, dst: .test(2), dport: 9)
        let unrelated = TestFrames.ipv4(from: .test(2), to: .test(1), src: .test(2), dst: .test(1), proto: IPProtocol.icmp,
                                        transport: [3, 3, 0, 0, 0, 0, 0, 0] + Array(otherProbe.getSlice(at: 14, length: 28)!.readableBytesView))
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: unrelated, now: .origin).deliveredPorts.isEmpty)
    }

    @Test func idleConnectionsExpireAndThenRepliesAreRefused() throws {
        var f = CoreFixture()
        f.addPort(1, policy: SecurityPolicy(ingress: .rules([])))
        f.addPort(2)
        let out = TestFrames.udp(from: .test(1), to: .test(2), src: .test(1), sport: 4000, dst: .test(2), dport: 9)
        let back = TestFrames.udp(from: .test(2), to: .test(1), src: .test(2), sport: 9, dst: .test(1), dport: 4000)
        _ = f.core.onFrameFromPort("vm1/eth0", frame: out, now: .origin)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: back, now: .at(seconds: 10)).deliveredPorts == ["vm1/eth0"])
        _ = f.core.onTick(now: .at(seconds: 100))
        #expect(f.core.status(of: "vm1/eth0")?.connections == 1, "replied UDP lives 180 s")
        _ = f.core.onTick(now: .at(seconds: 200))
        #expect(f.core.status(of: "vm1/eth0")?.connections == 0)
        #expect(f.core.onFrameFromPort("vm2/eth0", frame: back, now: .at(seconds: 201)).deliveredPorts.isEmpty)
    }

    @Test func countersNeverDecrease() throws {
        var f = CoreFixture()
        f.addPort(1, policy: SecurityPolicy(ingress: .rules([])))
        f.addPort(2)
        var random = SystemRandomNumberGenerator()
        var previous = [PortCounters(), PortCounters()]
        for step in 0..<500 {
            let sender: UInt8 = Bool.random(using: &random) ? 1 : 2
            let other: UInt8 = 3 - sender
            let spoof = Int.random(in: 0..<5, using: &random) == 0
            let frame = TestFrames.udp(from: spoof ? .test(99) : .test(sender), to: .test(other), src: .test(sender),
                                       sport: UInt16.random(in: 1000...1010, using: &random), dst: .test(other), dport: 9)
            let now = MeshInstant.at(seconds: Double(step))
            _ = f.core.onFrameFromPort(PortID("vm\(sender)/eth0"), frame: frame, now: now)
            if step % 50 == 0 { _ = f.core.onTick(now: now) }
            for (index, id) in ["vm1/eth0", "vm2/eth0"].enumerated() {
                let counters = try #require(f.core.counters(of: PortID(id)))
                #expect(counters.rxFrames >= previous[index].rxFrames && counters.txFrames >= previous[index].txFrames
                    && counters.totalDrops >= previous[index].totalDrops)
                previous[index] = counters
            }
        }
    }
}
