import Membership
import Testing

@Suite("Core: dissemination, metadata, leave, push-pull")
struct CoreDisseminationTests {
    @Test("retransmit limit is RetransmitMult * ceil(log10(n + 1))")
    func retransmitLimitFormula() {
        let settings = MembershipSettings()
        #expect(settings.retransmitLimit(memberCount: 1) == 4)
        #expect(settings.retransmitLimit(memberCount: 9) == 4)
        #expect(settings.retransmitLimit(memberCount: 10) == 8)
        #expect(settings.retransmitLimit(memberCount: 100) == 12)
        #expect(settings.retransmitLimit(memberCount: 999) == 12)
        #expect(settings.retransmitLimit(memberCount: 1000) == 16)
    }

    @Test("an update is piggybacked exactly retransmit-limit times, then dropped")
    func updateSentLimitTimes() {
        var instance = Fixture.instance(members: 10)  // n = 10: limit 8
        _ = instance.start(now: Fixture.at(0))
        var sentSelfAlive = 0
        var time = 0.0
        for _ in 0..<20 {
            time += 0.2
            let directives = instance.onTimer(.gossipTick, now: Fixture.at(time))
            for send in directives.sends {
                sentSelfAlive += send.datagram.updates.filter { $0.member == Fixture.id(0) }.count
            }
        }
        #expect(sentSelfAlive == 8)
        #expect(instance.pendingUpdates.isEmpty)
    }

    @Test("the gossip tick sends pending updates to 3 members and stops when nothing is pending")
    func gossipTickFanout() {
        var instance = Fixture.instance(members: 10)
        let started = instance.start(now: Fixture.at(0))
        let gossip = try! #require(started.timers.first { $0.timer == .gossipTick })
        #expect(gossip.at == Fixture.at(0.2))
        let tick = instance.onTimer(.gossipTick, now: gossip.at)
        #expect(tick.sends.count == 3)
        #expect(Set(tick.sends.map { $0.to }).count == 3)
        #expect(tick.sends.allSatisfy { $0.datagram.primary == nil })
        var time = 0.2
        var last = tick
        while last.timers.contains(where: { $0.timer == .gossipTick }) {
            time += 0.2
            last = instance.onTimer(.gossipTick, now: Fixture.at(time))
        }
        #expect(instance.pendingUpdates.isEmpty)
        #expect(time < 2)
    }

    @Test("a newer update about a member replaces the queued older one")
    func newerUpdateReplacesOlder() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        _ = instance.onDatagram(
            Fixture.datagram(from: 2, nil, updates: [.suspect(member: Fixture.id(1), incarnation: 0, from: Fixture.id(2))]),
            from: Fixture.address(2), now: Fixture.at(1))
        _ = instance.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 1, address: Fixture.address(1), metadata: nil)]),
            from: Fixture.address(1), now: Fixture.at(2))
        let aboutOne = instance.pendingUpdates.filter { $0.member == Fixture.id(1) }
        #expect(aboutOne.count == 1)
        #expect(aboutOne.first.map { if case .alive(_, 1, _, _, _) = $0 { true } else { false } } == true)
    }

    @Test("datagrams stay within the size budget and piggyback as many updates as fit")
    func datagramBudget() {
        var instance = Fixture.instance(members: 200)
        _ = instance.start(now: Fixture.at(0))
        let metadata = MemberMetadata(
            version: 1, domain: "dc1.example", cores: 64, memoryTotalBytes: 1 << 39, memoryFreeBytes: 1 << 38,
            channelAddress: PeerAddress(host: "10.9.9.9", port: 7947), keyFingerprint: Array(repeating: 7, count: 32))
        let updates = (300..<400).map {
            MemberUpdate.alive(member: Fixture.id($0), incarnation: 1, address: Fixture.address($0 % 250), metadata: metadata)
        }
        _ = instance.onDatagram(Fixture.datagram(from: 1, nil, updates: updates), from: Fixture.address(1), now: Fixture.at(1))
        let directives = instance.onDatagram(
            Fixture.datagram(from: 1, .ping(sequence: 1, target: Fixture.id(0))), from: Fixture.address(1), now: Fixture.at(1.1))
        let ack = try! #require(directives.sends.first)
        let encoded = GossipCodec.encode(ack.datagram)
        #expect(encoded.count <= MembershipSettings().maxEncodedDatagramSize)
        #expect(ack.datagram.updates.count >= 5)
        // One more update would not have fit.
        #expect(encoded.count + GossipCodec.piggybackCost(of: updates[0]) > MembershipSettings().maxEncodedDatagramSize)
    }

    @Test("membership's own updates go before metadata: a flood of fresh metadata never holds up a suspicion sent once")
    func membershipUpdatesGoBeforeMetadata() throws {
        var instance = Fixture.instance(members: 200)
        _ = instance.start(now: Fixture.at(0))
        let suspicion = MemberUpdate.suspect(member: Fixture.id(5), incarnation: 0, from: Fixture.id(2))
        _ = instance.onDatagram(Fixture.datagram(from: 2, nil, updates: [suspicion]), from: Fixture.address(2), now: Fixture.at(1))
        func ack(at seconds: Double, sequence: UInt64) throws -> GossipDatagram {
            let directives = instance.onDatagram(
                Fixture.datagram(from: 1, .ping(sequence: sequence, target: Fixture.id(0))), from: Fixture.address(1), now: Fixture.at(seconds))
            return try #require(directives.sends.first).datagram
        }
        #expect(try ack(at: 1.1, sequence: 1).updates.contains(suspicion))  // sent once: no longer the freshest
        // Many members change their metadata at once: far more than one datagram holds, all never sent.
        let changes = (10..<110).map {
            MemberUpdate.metadata(member: Fixture.id($0), metadata: MemberMetadata(
                version: 7, domain: "dc1.example", cores: 64, memoryTotalBytes: 1 << 39, memoryFreeBytes: 1 << 38, cpuLoadMilli: 850,
                channelAddress: PeerAddress(host: "10.9.9.9", port: 7947), keyFingerprint: Array(repeating: 7, count: 32)))
        }
        _ = instance.onDatagram(Fixture.datagram(from: 3, nil, updates: changes), from: Fixture.address(3), now: Fixture.at(1.2))
        #expect(instance.pendingUpdates.filter { if case .metadata = $0 { true } else { false } }.count == changes.count)
        let next = try ack(at: 1.3, sequence: 2)
        #expect(next.updates.first == suspicion, "\(next.updates.prefix(3))")
        #expect(next.updates.count > 1)  // metadata fills the room left
    }

    @Test("metadata: the owner bumps the version; receivers keep the newest and ignore older ones")
    func metadataNewerWins() {
        var owner = Fixture.instance(members: 3)
        _ = owner.start(now: Fixture.at(0))
        _ = owner.updateMetadata(MemberMetadata(version: 99, cores: 8), now: Fixture.at(1))
        #expect(owner.localMetadata.version == 1)  // the caller's version is ignored
        #expect(owner.localMetadata.cores == 8)
        _ = owner.updateMetadata(MemberMetadata(cores: 16, maintenance: true), now: Fixture.at(2))
        #expect(owner.localMetadata.version == 2)
        #expect(owner.pendingUpdates.contains { if case .metadata(Fixture.id(0), let m) = $0 { m.version == 2 && m.maintenance } else { false } })

        var observer = Fixture.instance(members: 3)
        _ = observer.start(now: Fixture.at(0))
        let v2 = MemberMetadata(version: 2, cores: 16)
        let v1 = MemberMetadata(version: 1, cores: 8)
        let applied = observer.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.metadata(member: Fixture.id(1), metadata: v2)]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(applied.contains { if case .metadataChanged(let m) = $0 { m.metadata == v2 } else { false } })
        let stale = observer.onDatagram(
            Fixture.datagram(from: 2, nil, updates: [.metadata(member: Fixture.id(1), metadata: v1)]), from: Fixture.address(2), now: Fixture.at(2))
        #expect(!stale.contains { if case .metadataChanged = $0 { true } else { false } })
        #expect(observer.member(Fixture.id(1))?.metadata == v2)
        // An alive update carrying older metadata does not downgrade it either.
        _ = observer.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.alive(member: Fixture.id(1), incarnation: 5, address: Fixture.address(1), metadata: v1)]),
            from: Fixture.address(1), now: Fixture.at(3))
        #expect(observer.member(Fixture.id(1))?.metadata == v2)
    }

    @Test("leave: the member announces it, completes once disseminated, and others mark it left")
    func gracefulLeave() {
        var leaver = Fixture.instance(members: 4)
        _ = leaver.start(now: Fixture.at(0))
        _ = leaver.leave(now: Fixture.at(1))
        #expect(leaver.pendingUpdates.contains { if case .left(Fixture.id(0), 0, _) = $0 { true } else { false } })
        // No more probing while leaving.
        #expect(leaver.onTimer(.probeTick(generation: 1), now: Fixture.at(1.5)).firstPing == nil)
        var time = 1.0
        var completed = false
        var leaveNotices = 0
        while !completed, time < 10 {
            time += 0.2
            let directives = leaver.onTimer(.gossipTick, now: Fixture.at(time))
            leaveNotices += directives.sends.flatMap { $0.datagram.updates }.filter { if case .left = $0 { true } else { false } }.count
            completed = directives.contains(.leaveCompleted)
        }
        #expect(completed)
        #expect(leaveNotices > 0)
        #expect(leaver.hasLeft)

        var observer = Fixture.instance(members: 4)
        _ = observer.start(now: Fixture.at(0))
        let seen = observer.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.left(member: Fixture.id(1), incarnation: 0)]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(seen.changes.map(\.member.status) == [.left])
        #expect(observer.liveMemberCount == 2)
        // Left members are not probed, and a same-incarnation alive does not bring them back.
        _ = observer.onDatagram(
            Fixture.datagram(from: 2, nil, updates: [.alive(member: Fixture.id(1), incarnation: 0, address: Fixture.address(1), metadata: nil)]),
            from: Fixture.address(2), now: Fixture.at(2))
        #expect(observer.status(of: Fixture.id(1)) == .left)
    }

    @Test("leave: metadata still queued does not hold a leave once its own announcement is sent")
    func leaveDoesNotWaitForMetadata() throws {
        var leaver = Fixture.instance(members: 200)
        _ = leaver.start(now: Fixture.at(0))
        // Far more metadata than the leave's ticks can carry, all never sent.
        let changes = (10..<190).map {
            MemberUpdate.metadata(member: Fixture.id($0), metadata: MemberMetadata(
                version: 7, domain: "dc1.example", cores: 64, memoryTotalBytes: 1 << 39, memoryFreeBytes: 1 << 38, cpuLoadMilli: 850,
                channelAddress: PeerAddress(host: "10.9.9.9", port: 7947), keyFingerprint: Array(repeating: 7, count: 32)))
        }
        _ = leaver.onDatagram(Fixture.datagram(from: 3, nil, updates: changes), from: Fixture.address(3), now: Fixture.at(0.5))
        _ = leaver.leave(now: Fixture.at(1))
        var time = 1.0
        var completedAt: Double?
        while completedAt == nil, time < 30 {
            time += 0.2
            if leaver.onTimer(.gossipTick, now: Fixture.at(time)).contains(.leaveCompleted) { completedAt = time }
        }
        let completed = try #require(completedAt, "the leave never completed")
        #expect(!leaver.pendingUpdates.contains { if case .left = $0 { true } else { false } })
        #expect(leaver.pendingUpdates.contains { if case .metadata = $0 { true } else { false } }, "the metadata was all sent: the test proves nothing")
        #expect(leaver.hasLeft && completed < 30)
    }

    @Test("join: the joiner asks for a push-pull; the seed merges it and announces the joiner; the joiner learns everyone")
    func joinThroughPushPull() {
        var seed = Fixture.instance(members: 4)
        _ = seed.start(now: Fixture.at(0))
        var joiner = MembershipInstance(
            id: "new", address: PeerAddress(host: "10.0.1.1", port: 7946), metadata: MemberMetadata(version: 3, cores: 4),
            random: SeededRandomGenerator(seed: 9))
        _ = joiner.start(now: Fixture.at(0))
        let join = joiner.join(seeds: [Fixture.address(0)], now: Fixture.at(0))
        let request = try! #require(join.pushPulls.first)
        #expect(request.purpose == .join && request.state.isJoin && request.address == Fixture.address(0))
        let (reply, seedDirectives) = seed.onPushPullRequest(request.state, now: Fixture.at(0.1))
        #expect(seed.status(of: "new") == .alive)
        #expect(seed.member("new")?.metadata?.version == 3)
        #expect(seedDirectives.changes.map(\.member.id) == ["new"])
        #expect(seed.pendingUpdates.contains { if case .alive("new", 0, _, _, _) = $0 { true } else { false } })
        let merged = joiner.onPushPullResponse(reply, for: request, now: Fixture.at(0.2))
        #expect(joiner.liveMemberCount == 4)
        #expect(merged.contains(.joined(through: Fixture.address(0), knownMembers: 4)))
    }

    @Test("push-pull: a peer's belief that this member is dead is refuted; its dead members become suspects here")
    func pushPullMergeRules() {
        var instance = Fixture.instance(members: 4)
        _ = instance.start(now: Fixture.at(0))
        let remote = PushPullState(
            sender: Fixture.id(1), isJoin: false,
            members: [
                MemberRecord(id: Fixture.id(0), address: Fixture.address(0), status: .dead, incarnation: 2, metadata: nil),
                MemberRecord(id: Fixture.id(2), address: Fixture.address(2), status: .dead, incarnation: 0, metadata: nil),
                MemberRecord(id: Fixture.id(3), address: Fixture.address(3), status: .left, incarnation: 0, metadata: nil),
            ])
        _ = instance.onPushPullRequest(remote, now: Fixture.at(1))
        #expect(instance.incarnation == 3)
        #expect(instance.status(of: Fixture.id(2)) == .suspect)
        #expect(instance.status(of: Fixture.id(3)) == .left)
    }

    @Test("the push-pull tick picks a live member and scales its period above 32 members")
    func pushPullTick() {
        var instance = Fixture.instance(members: 5)
        _ = instance.start(now: Fixture.at(0))
        let tick = instance.onTimer(.pushPullTick, now: Fixture.at(10))
        #expect(tick.pushPulls.count == 1)
        #expect(tick.pushPulls.first?.purpose == .antiEntropy)
        #expect(tick.pushPulls.first?.state.members.count == 5)
        #expect(tick.timers.contains { $0.timer == .pushPullTick && $0.at == Fixture.at(40) })
        let settings = MembershipSettings()
        #expect(settings.scaledPushPullInterval(memberCount: 32) == .seconds(30))
        #expect(settings.scaledPushPullInterval(memberCount: 1000) == .seconds(180))
    }
}
