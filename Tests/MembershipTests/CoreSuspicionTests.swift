import Membership
import MeshTime
import Testing

@Suite("Core: suspicion, refutation, death and the incarnation rules")
struct CoreSuspicionTests {
    private func suspect(_ member: Int, incarnation: UInt64 = 0, from accuser: Int) -> GossipDatagram {
        Fixture.datagram(
            from: accuser, nil,
            updates: [.suspect(member: Fixture.id(member), incarnation: incarnation, from: Fixture.id(accuser))])
    }

    private func suspicionDeadline(_ directives: [MembershipDirective], _ member: Int) -> MeshInstant? {
        directives.timers.last { $0.timer == .suspicionTimeout(member: Fixture.id(member)) }?.at
    }

    @Test("a suspicion of this member is refuted with a higher incarnation, and costs local health")
    func refuteSuspicionOfSelf() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(suspect(0, incarnation: 0, from: 1), from: Fixture.address(1), now: Fixture.at(1))
        #expect(instance.incarnation == 1)
        #expect(instance.localHealthScore == 1)
        #expect(instance.pendingUpdates.contains { if case .alive(Fixture.id(0), 1, _, _, _) = $0 { true } else { false } })
        // A stale suspicion (older incarnation) is not refuted again.
        _ = instance.onDatagram(suspect(0, incarnation: 0, from: 2), from: Fixture.address(2), now: Fixture.at(2))
        #expect(instance.incarnation == 1)
        // A suspicion at a higher incarnation (we restarted and forgot) is refuted above it.
        _ = instance.onDatagram(suspect(0, incarnation: 7, from: 2), from: Fixture.address(2), now: Fixture.at(3))
        #expect(instance.incarnation == 8)
    }

    @Test("a suspect member that refutes with a higher incarnation is alive again; the same incarnation does not help")
    func refutationByIncarnation() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        let suspected = instance.onDatagram(suspect(1, from: 2), from: Fixture.address(2), now: Fixture.at(1))
        #expect(instance.status(of: Fixture.id(1)) == .suspect)
        #expect(suspected.changes.map(\.member.status) == [.suspect])
        let same = Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 0, address: Fixture.address(1), metadata: nil)])
        _ = instance.onDatagram(same, from: Fixture.address(1), now: Fixture.at(2))
        #expect(instance.status(of: Fixture.id(1)) == .suspect)
        let higher = Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 1, address: Fixture.address(1), metadata: nil)])
        let revived = instance.onDatagram(higher, from: Fixture.address(1), now: Fixture.at(3))
        #expect(instance.status(of: Fixture.id(1)) == .alive)
        #expect(instance.member(Fixture.id(1))?.incarnation == 1)
        #expect(revived.changes.first?.previousStatus == .suspect)
        // The old suspicion timer no longer kills it.
        let late = instance.onTimer(.suspicionTimeout(member: Fixture.id(1)), now: Fixture.at(100))
        #expect(late.changes.isEmpty)
        #expect(instance.status(of: Fixture.id(1)) == .alive)
    }

    @Test("an unrefuted suspicion ends in death, gossiped as a dead update")
    func suspicionTimeoutKills() {
        var instance = Fixture.instance(members: 3)  // too few members for confirmations: minimum timeout
        _ = instance.start(now: Fixture.at(0))
        let directives = instance.onDatagram(suspect(1, from: 2), from: Fixture.address(2), now: Fixture.at(1))
        let deadline = try! #require(suspicionDeadline(directives, 1))
        // n = 3: 4 * max(1, log10 3) * 1 s = 4 s.
        #expect(deadline == Fixture.at(5))
        #expect(instance.onTimer(.suspicionTimeout(member: Fixture.id(1)), now: Fixture.at(4.9)).changes.isEmpty)
        let fired = instance.onTimer(.suspicionTimeout(member: Fixture.id(1)), now: deadline)
        #expect(fired.changes.map(\.member.status) == [.dead])
        #expect(instance.status(of: Fixture.id(1)) == .dead)
        #expect(instance.pendingUpdates.contains { if case .dead(Fixture.id(1), 0, Fixture.id(0), _) = $0 { true } else { false } })
        // Dead is final for this incarnation: neither alive(0) nor suspect(0) changes it.
        _ = instance.onDatagram(Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 0, address: Fixture.address(1), metadata: nil)]), from: Fixture.address(1), now: Fixture.at(6))
        #expect(instance.status(of: Fixture.id(1)) == .dead)
        // A higher incarnation brings it back.
        _ = instance.onDatagram(Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 1, address: Fixture.address(1), metadata: nil)]), from: Fixture.address(1), now: Fixture.at(7))
        #expect(instance.status(of: Fixture.id(1)) == .alive)
    }

    @Test("independent confirmations shrink the suspicion timeout from the maximum to the minimum (Lifeguard)")
    func confirmationsShrinkTimeout() {
        var instance = Fixture.instance(members: 10)
        _ = instance.start(now: Fixture.at(0))
        // n = 10: min = 4 * log10(10) * 1 s = 4 s, max = 6 * min = 24 s, k = 4 - 2 = 2.
        let first = instance.onDatagram(suspect(1, from: 2), from: Fixture.address(2), now: Fixture.at(0))
        #expect(suspicionDeadline(first, 1) == Fixture.at(24))
        // The same accuser again is not a confirmation.
        let repeated = instance.onDatagram(suspect(1, from: 2), from: Fixture.address(2), now: Fixture.at(1))
        #expect(suspicionDeadline(repeated, 1) == nil)
        // One confirmation: 24 - log(2)/log(3) * 20 = 11.381 s (floored to ms).
        let second = instance.onDatagram(suspect(1, from: 3), from: Fixture.address(3), now: Fixture.at(1))
        #expect(suspicionDeadline(second, 1) == Fixture.at(11.381))
        #expect(instance.pendingUpdates.contains { if case .suspect(Fixture.id(1), 0, Fixture.id(3), _) = $0 { true } else { false } })
        // Two confirmations: the minimum, 4 s after the suspicion started.
        let third = instance.onDatagram(suspect(1, from: 4), from: Fixture.address(4), now: Fixture.at(2))
        #expect(suspicionDeadline(third, 1) == Fixture.at(4))
        // Beyond k, further accusers change nothing.
        let fourth = instance.onDatagram(suspect(1, from: 5), from: Fixture.address(5), now: Fixture.at(2.5))
        #expect(suspicionDeadline(fourth, 1) == nil)
        #expect(instance.onTimer(.suspicionTimeout(member: Fixture.id(1)), now: Fixture.at(4)).changes.map(\.member.status) == [.dead])
    }

    @Test("a dead announcement about this member while running is refuted")
    func refuteDeath() {
        var instance = Fixture.instance(members: 3)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.dead(member: Fixture.id(0), incarnation: 3, from: Fixture.id(1))]),
            from: Fixture.address(1), now: Fixture.at(1))
        #expect(instance.incarnation == 4)
    }

    @Test("updates about unknown members: alive adds them, suspect and dead are ignored")
    func unknownMembers() {
        var instance = Fixture.instance(members: 2)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(suspect(7, from: 1), from: Fixture.address(1), now: Fixture.at(1))
        #expect(instance.status(of: Fixture.id(7)) == nil)
        let added = instance.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(7), incarnation: 2, address: Fixture.address(7), metadata: nil)]),
            from: Fixture.address(1), now: Fixture.at(2))
        #expect(instance.status(of: Fixture.id(7)) == .alive)
        #expect(added.changes.first?.previousStatus == nil)
        #expect(instance.liveMemberCount == 2)
    }

    @Test("a ping carrying a suspicion we already refuted is answered with the refutation itself")
    func staleAccusationCorrected() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(suspect(0, incarnation: 0, from: 1), from: Fixture.address(1), now: Fixture.at(1))
        #expect(instance.incarnation == 1)
        // Member 2 missed the refutation and pings us with its stale suspicion (buddy system).
        let ping = Fixture.datagram(
            from: 2, .ping(sequence: 8, target: Fixture.id(0)),
            updates: [.suspect(member: Fixture.id(0), incarnation: 0, from: Fixture.id(2))])
        let reply = instance.onDatagram(ping, from: Fixture.address(2), now: Fixture.at(2))
        let ack = try! #require(reply.sends.first)
        #expect(ack.datagram.primary == .ack(sequence: 8))
        #expect(ack.datagram.updates.contains { if case .alive(Fixture.id(0), 1, _, _, _) = $0 { true } else { false } })
        #expect(instance.incarnation == 1)  // no second refutation
    }

    @Test("refutations are disseminated twice as many times as other updates")
    func refutationsTravelFarther() {
        var instance = Fixture.instance(members: 10)  // limit 8
        _ = instance.start(now: Fixture.at(0))
        var time = 0.0
        for _ in 0..<10 {  // drain the start-up announcement
            time += 0.2
            _ = instance.onTimer(.gossipTick, now: Fixture.at(time))
        }
        _ = instance.onDatagram(suspect(1, from: 2), from: Fixture.address(2), now: Fixture.at(time))
        _ = instance.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 1, address: Fixture.address(1), metadata: nil)]),
            from: Fixture.address(1), now: Fixture.at(time))
        var refutations = 0
        for _ in 0..<20 {
            time += 0.2
            for send in instance.onTimer(.gossipTick, now: Fixture.at(time)).sends {
                refutations += send.datagram.updates.filter { if case .alive(Fixture.id(1), 1, _, _, _) = $0 { true } else { false } }.count
            }
        }
        #expect(refutations == 16)
    }
}
