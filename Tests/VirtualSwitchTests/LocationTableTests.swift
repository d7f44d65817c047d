import MeshTime
import Testing
@testable import VirtualSwitch

/// The mesh-wide MAC location table: mobility sequence numbers, duplicates, freezing.
@Suite("Switch core: MAC location table")
struct LocationTableTests {
    let mac = MACAddress.test(10)

    func location(_ host: HostID, _ sequence: UInt64, withdrawn: Bool = false) -> MACLocation {
        MACLocation(mac: mac, segment: 100, host: host, sequence: sequence, ips: [.test(10)], withdrawn: withdrawn)
    }

    @Test func highestSequenceWinsWhateverTheArrivalOrder() {
        var f = CoreFixture()
        _ = f.core.onLocations([location("host-b", 3)], from: .gossip, now: .origin)
        _ = f.core.onLocations([location("host-c", 2)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-b", "older sequence ignored")
        _ = f.core.onLocations([location("host-c", 4)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-c")
        _ = f.core.onLocations([location("host-b", 3)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.location.sequence == 4)
        #expect(f.core.floodHosts(segment: 100) == ["host-c"])
    }

    @Test func directPushesMayOnlyCarryTheSendersOwnLocations() {
        var f = CoreFixture()
        _ = f.core.onLocations([location("host-c", 5)], from: .direct("host-b"), now: .origin)
        #expect(f.core.location(of: mac, segment: 100) == nil)
        _ = f.core.onLocations([location("host-b", 5)], from: .direct("host-b"), now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-b")
        // Only the owner withdraws.
        _ = f.core.onLocations([location("host-c", 9, withdrawn: true)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-b")
        _ = f.core.onLocations([location("host-b", 5, withdrawn: true)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100) == nil)
        #expect(f.core.floodHosts(segment: 100).isEmpty)
    }

    @Test func sameSequenceFromTwoHostsIsFlaggedDuplicateOnce() throws {
        var f = CoreFixture()
        _ = f.core.onLocations([location("host-c", 7)], from: .gossip, now: .origin)
        let out = f.core.onLocations([location("host-b", 7)], from: .gossip, now: .origin)
        #expect(out.events == [.duplicateMAC(mac, segment: 100, hosts: ["host-b", "host-c"], sequence: 7)])
        let entry = try #require(f.core.location(of: mac, segment: 100))
        #expect(entry.duplicate)
        #expect(entry.location.host == "host-b", "the lower host id wins the tie everywhere")
        #expect(f.core.onLocations([location("host-c", 7)], from: .gossip, now: .origin).events.isEmpty, "reported once")
        // A higher sequence resolves it.
        _ = f.core.onLocations([location("host-c", 8)], from: .gossip, now: .origin)
        #expect(f.core.location(of: mac, segment: 100)?.duplicate == false)
    }

    @Test func aMACThatMovesFiveTimesIn180SecondsIsFrozenAndReported() throws {
        var f = CoreFixture()
        let hosts: [HostID] = ["host-b", "host-c"]
        _ = f.core.onLocations([location("host-b", 1)], from: .gossip, now: .origin)
        var events: [SwitchEvent] = []
        for move in 1...5 {
            let at = MeshInstant.at(seconds: Double(move) * 30)
            events += f.core.onLocations([location(hosts[move % 2], UInt64(move + 1))], from: .gossip, now: at).events
        }
        #expect(events == [.macFrozen(mac, segment: 100, host: "host-c", moves: 5)])
        let entry = try #require(f.core.location(of: mac, segment: 100))
        #expect(entry.frozen)
        // Frozen: further moves are ignored until an operator clears it.
        _ = f.core.onLocations([location("host-b", 50)], from: .gossip, now: .at(seconds: 200))
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-c")
        let cleared = f.core.clearLocationFlags(mac: mac, segment: 100)
        #expect(cleared)
        _ = f.core.onLocations([location("host-b", 50)], from: .gossip, now: .at(seconds: 201))
        #expect(f.core.location(of: mac, segment: 100)?.location.host == "host-b")
    }

    @Test func movesSpreadOverMoreThan180SecondsDoNotFreeze() {
        var f = CoreFixture()
        let hosts: [HostID] = ["host-b", "host-c"]
        var events: [SwitchEvent] = []
        for move in 0...10 {
            let at = MeshInstant.at(seconds: Double(move) * 50)
            events += f.core.onLocations([location(hosts[move % 2], UInt64(move + 1))], from: .gossip, now: at).events
        }
        #expect(events.isEmpty)
        #expect(f.core.location(of: mac, segment: 100)?.frozen == false)
    }

    @Test func aLocalPortWhoseMACIsClaimedElsewhereReclaimsItAndDuplicateVMsEndFrozen() throws {
        // Two VMs with the same MAC on two hosts keep taking the MAC from each other.
        var a = CoreFixture(host: "host-a")
        var b = CoreFixture(host: "host-b")
        let claimA = a.addPort(1)
        let claimB = b.addPort(1)
        #expect(claimA.locationPushes.isEmpty, "nobody to push to yet")
        func published(_ directives: [SwitchDirective]) -> [MACLocation] {
            directives.events.flatMap { if case let .publish(l) = $0 { return l } else { return [] } }
        }
        // Both claim sequence 1: a duplicate; host-a wins the tie, host-b's port lost it.
        #expect(a.core.onLocations(published(claimB), from: .gossip, now: .origin).events.count == 1)
        let lostOnB = b.core.onLocations(published(claimA), from: .gossip, now: .origin).events
        #expect(lostOnB.contains(.locationLost("vm1/eth0", to: "host-a", sequence: 1)))
        var frozen: [SwitchEvent] = []
        var now = MeshInstant.origin
        for _ in 0..<6 {
            now = now + .seconds(10)
            // Each side sends a frame, which reclaims; the claim travels to the other side.
            for (from, to) in [(0, 1), (1, 0)] {
                var sender = from == 0 ? a : b
                var receiver = to == 0 ? a : b
                let frame = TestFrames.gratuitousARP(from: .test(1), ip: .test(1))
                let out = sender.core.onFrameFromPort("vm1/eth0", frame: frame, now: now)
                frozen += out.events.filter { if case .macFrozen = $0 { return true } else { return false } }
                let received = receiver.core.onLocations(published(out), from: .gossip, now: now)
                frozen += received.events.filter { if case .macFrozen = $0 { return true } else { return false } }
                if from == 0 { a = sender; b = receiver } else { b = sender; a = receiver }
            }
        }
        #expect(!frozen.isEmpty, "duplicate detection froze the MAC")
        #expect(a.core.location(of: .test(1), segment: 100)?.frozen == true || b.core.location(of: .test(1), segment: 100)?.frozen == true)
    }
}
