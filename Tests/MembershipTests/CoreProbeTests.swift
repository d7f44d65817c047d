import Membership
import MeshTime
import Testing

@Suite("Core: probing, indirect probing and local health")
struct CoreProbeTests {
    /// Starts member 0 of a 10-member mesh and runs its first probe tick; returns the ping.
    private func startAndProbe(
        _ instance: inout MembershipInstance
    ) -> (sequence: UInt64, target: MemberID, to: PeerAddress, tick: UInt64, tickAt: MeshInstant) {
        let started = instance.start(now: Fixture.at(0))
        let tick = started.probeTick!
        let directives = instance.onTimer(.probeTick(generation: tick.generation), now: tick.at)
        let ping = directives.firstPing!
        let next = directives.probeTick!
        return (ping.sequence, ping.target, ping.to, next.generation, next.at)
    }

    @Test("start schedules the first probe within one interval and a push-pull, and announces itself")
    func startSchedules() {
        var instance = Fixture.instance(members: 10)
        let directives = instance.start(now: Fixture.at(0))
        let tick = directives.probeTick
        #expect(tick != nil)
        #expect(tick!.at < Fixture.at(1))
        #expect(directives.timers.contains { $0.timer == .pushPullTick })
        #expect(instance.pendingUpdates.contains { if case .alive(let member, 0, _, _, _) = $0 { member == Fixture.id(0) } else { false } })
    }

    @Test("a probe tick pings one member and schedules the probe timeout and the next tick")
    func probeTickPings() {
        var instance = Fixture.instance(members: 10)
        let started = instance.start(now: Fixture.at(0))
        let tick = started.probeTick!
        let directives = instance.onTimer(.probeTick(generation: tick.generation), now: tick.at)
        let ping = try! #require(directives.firstPing)
        #expect(ping.target != Fixture.id(0))
        #expect(ping.to == Fixture.address(Int(ping.target.hostID.dropFirst())!))
        // Sealed for the target only (Protocol.md §4.12.1): no other member can be replayed it.
        #expect(directives.sends.first?.receiver == ping.target)
        #expect(directives.timers.contains { $0.timer == .probeTimeout(sequence: ping.sequence) && $0.at == tick.at + .milliseconds(500) })
        #expect(directives.probeTick?.at == tick.at + .seconds(1))
    }

    @Test("a ping is answered with an ack carrying the same sequence, sent to the source address")
    func pingIsAcked() {
        var instance = Fixture.instance(members: 3)
        _ = instance.start(now: Fixture.at(0))
        let source = PeerAddress(host: "192.0.2.9", port: 4000)
        let directives = instance.onDatagram(
            Fixture.datagram(from: 1, .ping(sequence: 42, target: Fixture.id(0))), from: source, now: Fixture.at(0.1))
        #expect(directives.sends.count == 1)
        #expect(directives.sends.first?.datagram.primary == .ack(sequence: 42))
        #expect(directives.sends.first?.to == source)
        #expect(directives.sends.first?.receiver == Fixture.id(1), "the ack is sealed for the pinging member")
    }

    @Test("a ping meant for another member id is ignored")
    func misdirectedPingIgnored() {
        var instance = Fixture.instance(members: 3)
        _ = instance.start(now: Fixture.at(0))
        let directives = instance.onDatagram(
            Fixture.datagram(from: 1, .ping(sequence: 1, target: "someone-else")), from: Fixture.address(1),
            now: Fixture.at(0.1))
        #expect(directives.sends.isEmpty)
    }

    @Test("an unacked ping leads to ping-requests to 3 other members, asking for nacks")
    func timeoutSendsPingRequests() {
        var instance = Fixture.instance(members: 10)
        let probe = startAndProbe(&instance)
        let directives = instance.onTimer(.probeTimeout(sequence: probe.sequence), now: probe.tickAt - .milliseconds(500))
        let requests = directives.sends.compactMap { send -> (PingRequest, PeerAddress)? in
            if case .pingRequest(let request) = send.datagram.primary { return (request, send.to) }
            return nil
        }
        #expect(requests.count == 3)
        #expect(Set(requests.map(\.1)).count == 3)
        #expect(!requests.contains { $0.1 == probe.to })
        #expect(requests.allSatisfy { $0.0.target == probe.target && $0.0.sequence == probe.sequence && $0.0.wantsNack })
        // Each request is sealed for the relay at its address, not for the target.
        #expect(directives.sends.allSatisfy { $0.to == Fixture.address(Int($0.receiver.hostID.dropFirst())!) })
    }

    @Test("an ack before the timeout means no ping-request and no suspicion")
    func ackPreventsIndirectProbe() {
        var instance = Fixture.instance(members: 10)
        let probe = startAndProbe(&instance)
        let targetIndex = Int(probe.target.hostID.dropFirst())!
        _ = instance.onDatagram(Fixture.datagram(from: targetIndex, .ack(sequence: probe.sequence)), from: probe.to, now: Fixture.at(0.9))
        let timeout = instance.onTimer(.probeTimeout(sequence: probe.sequence), now: Fixture.at(1.0))
        #expect(timeout.sends.isEmpty)
        let next = instance.onTimer(.probeTick(generation: probe.tick), now: probe.tickAt)
        #expect(next.changes.isEmpty)
        #expect(instance.status(of: probe.target) == .alive)
    }

    @Test("a relay pings the target, forwards its ack, and nacks when the target stays silent")
    func relayForwardsAckOrNacks() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        let requester = Fixture.address(1)
        let request = PingRequest(sequence: 77, target: Fixture.id(2), targetAddress: Fixture.address(2), wantsNack: true)
        let relayed = instance.onDatagram(Fixture.datagram(from: 1, .pingRequest(request)), from: requester, now: Fixture.at(1))
        let ping = try! #require(relayed.firstPing)
        #expect(ping.target == Fixture.id(2) && ping.to == Fixture.address(2))
        #expect(relayed.sends.first?.receiver == Fixture.id(2))
        #expect(relayed.timers.contains { $0.timer == .relayTimeout(sequence: ping.sequence) && $0.at == Fixture.at(1.4) })
        let acked = instance.onDatagram(Fixture.datagram(from: 2, .ack(sequence: ping.sequence)), from: Fixture.address(2), now: Fixture.at(1.01))
        #expect(acked.sends.map { $0.datagram.primary } == [.ack(sequence: 77)])
        #expect(acked.sends.first?.to == requester)
        #expect(acked.sends.first?.receiver == Fixture.id(1), "the forwarded ack is sealed for the requester")
        // After a forwarded ack, the relay timeout does nothing.
        #expect(instance.onTimer(.relayTimeout(sequence: ping.sequence), now: Fixture.at(1.4)).sends.isEmpty)

        let second = instance.onDatagram(Fixture.datagram(from: 1, .pingRequest(request)), from: requester, now: Fixture.at(2))
        let silent = try! #require(second.firstPing)
        let nack = instance.onTimer(.relayTimeout(sequence: silent.sequence), now: Fixture.at(2.4))
        #expect(nack.sends.map { $0.datagram.primary } == [.nack(sequence: 77)])
        #expect(nack.sends.first?.to == requester)
        #expect(nack.sends.first?.receiver == Fixture.id(1))
    }

    @Test("a probe that fails suspects the target; missing nacks raise local health, an ack lowers it")
    func localHealthFollowsNacks() {
        var instance = Fixture.instance(members: 10)
        var probe = startAndProbe(&instance)
        _ = instance.onTimer(.probeTimeout(sequence: probe.sequence), now: probe.tickAt - .milliseconds(500))
        // One of three relays answers with a nack: two nacks are missing, so the score rises by 2.
        _ = instance.onDatagram(Fixture.datagram(from: 3, .nack(sequence: probe.sequence)), from: Fixture.address(3), now: probe.tickAt - .milliseconds(50))
        let end = instance.onTimer(.probeTick(generation: probe.tick), now: probe.tickAt)
        #expect(instance.localHealthScore == 2)
        #expect(instance.status(of: probe.target) == .suspect)
        #expect(end.changes.contains { $0.member.id == probe.target && $0.member.status == .suspect && $0.previousStatus == .alive })
        #expect(instance.pendingUpdates.contains { if case .suspect(probe.target, 0, Fixture.id(0), _) = $0 { true } else { false } })
        // The probe period is now stretched by (score + 1).
        let nextPing = try! #require(end.firstPing)
        #expect(end.probeTick?.at == probe.tickAt + .seconds(3))

        // A successful probe lowers the score by one.
        let index = Int(nextPing.target.hostID.dropFirst())!
        _ = instance.onDatagram(Fixture.datagram(from: index, .ack(sequence: nextPing.sequence)), from: nextPing.to, now: probe.tickAt + .milliseconds(10))
        probe.tick = end.probeTick!.generation
        _ = instance.onTimer(.probeTick(generation: probe.tick), now: end.probeTick!.at)
        #expect(instance.localHealthScore == 1)
    }

    @Test("all nacks arriving means the target, not this member, is the problem: no health penalty")
    func allNacksNoPenalty() {
        var instance = Fixture.instance(members: 10)
        let probe = startAndProbe(&instance)
        let timeout = instance.onTimer(.probeTimeout(sequence: probe.sequence), now: probe.tickAt - .milliseconds(500))
        for send in timeout.sends {
            _ = instance.onDatagram(GossipDatagram(sender: "relay", primary: .nack(sequence: probe.sequence)), from: send.to, now: probe.tickAt - .milliseconds(50))
        }
        _ = instance.onTimer(.probeTick(generation: probe.tick), now: probe.tickAt)
        #expect(instance.localHealthScore == 0)
        #expect(instance.status(of: probe.target) == .suspect)
    }

    @Test("pinging a suspect member carries the suspicion to it (buddy system)")
    func buddySystem() {
        var instance = Fixture.instance(members: 2)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(
            Fixture.datagram(from: 9, nil, updates: [.suspect(member: Fixture.id(1), incarnation: 0, from: "m9")]),
            from: Fixture.address(9), now: Fixture.at(0.1))
        let tick = instance.onTimer(.probeTick(generation: 1), now: Fixture.at(0.5))
        let ping = try! #require(tick.firstPing)
        #expect(ping.target == Fixture.id(1))
        #expect(ping.updates.first == .suspect(member: Fixture.id(1), incarnation: 0, from: Fixture.id(0)))
    }

    @Test("a ping from a member believed dead is answered with that belief, so it can refute")
    func deadHintInAck() {
        var instance = Fixture.instance(members: 3)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(
            Fixture.datagram(from: 2, nil, updates: [.dead(member: Fixture.id(1), incarnation: 0, from: Fixture.id(2))]),
            from: Fixture.address(2), now: Fixture.at(0.1))
        let reply = instance.onDatagram(Fixture.datagram(from: 1, .ping(sequence: 5, target: Fixture.id(0))), from: Fixture.address(1), now: Fixture.at(0.2))
        #expect(reply.sends.first?.datagram.updates.first == .dead(member: Fixture.id(1), incarnation: 0, from: Fixture.id(0)))
    }
}
