import Foundation
import Membership
import MeshSimulator
import MeshTime
import MeshWire
import Testing

/// Revocation lists in the membership core (Protocol.md §4.14): the newest version per domain
/// is held, piggybacked and carried in push-pull; revoked members are banned.
@Suite struct CoreRevocationTests {
    /// An encoded RevocationList with `version` for `domain` (unsigned: the core never checks
    /// signatures, the shell does before the core sees a list).
    static func notice(_ domain: String = "lab", version: UInt64, revoking host: String = "m3") -> RevocationNotice {
        var entry = Hostmesh_V1_RevocationEntry()
        entry.hostID = host
        var body = Hostmesh_V1_RevocationListBody()
        body.format = 1
        body.domain = domain
        body.version = version
        body.issuerKey = Data(repeating: 7, count: 32)
        body.entries = [entry]
        var wire = Hostmesh_V1_RevocationList()
        wire.body = try! body.serializedData()
        wire.signature = Data(repeating: 9, count: 64)
        let bytes = [UInt8](try! wire.serializedData())
        return try! GossipCodec.decodeRevocationNotice(bytes)
    }

    func learned(_ directives: [MembershipDirective]) -> [RevocationNotice] {
        directives.compactMap { if case .revocationLearned(let notice) = $0 { notice } else { nil } }
    }

    @Test func theCodecReadsDomainAndVersionAndRoundTripsTheSignedBytes() throws {
        let notice = Self.notice(version: 4)
        #expect(notice.domain == "lab" && notice.version == 4)
        let datagram = GossipDatagram(sender: "m1", primary: nil, updates: [.revocation(notice)])
        #expect(try GossipCodec.decodeDatagram(GossipCodec.encode(datagram)) == datagram)
        let state = PushPullState(sender: "m1", isJoin: false, members: [], revocations: [notice])
        #expect(try GossipCodec.decodePushPullState(GossipCodec.encode(state)) == state)
        #expect(throws: GossipCodecError.self) { try GossipCodec.decodeRevocationNotice([0xFF, 0x01]) }
    }

    @Test func aNewerListIsHeldReportedAndPiggybackedAnOlderOneIgnored() {
        var core = Fixture.instance(members: 5)
        _ = core.start(now: Fixture.at(0))
        let v2 = Self.notice(version: 2)
        let directives = core.onDatagram(Fixture.datagram(from: 1, nil, updates: [.revocation(v2)]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(learned(directives) == [v2])
        #expect(core.revocation(of: "lab") == v2)
        #expect(core.pendingUpdates.contains(.revocation(v2)))
        // Older and equal versions change nothing and are not passed on.
        let again = core.onDatagram(Fixture.datagram(from: 2, nil, updates: [.revocation(Self.notice(version: 1)), .revocation(v2)]),
                                    from: Fixture.address(2), now: Fixture.at(2))
        #expect(learned(again).isEmpty)
        #expect(core.revocation(of: "lab")?.version == 2)
        // The next datagram this member sends carries it.
        let tick = core.onTimer(.gossipTick, now: Fixture.at(3))
        #expect(tick.sends.contains { $0.datagram.updates.contains(.revocation(v2)) })
        // Push-pull carries the newest list of each domain.
        let other = Self.notice("other", version: 1)
        _ = core.learnRevocation(other, now: Fixture.at(4))
        #expect(core.onPushPullRequest(PushPullState(sender: "m1", isJoin: false, members: []), now: Fixture.at(5)).reply.revocations == [v2, other])
    }

    @Test func aListInAPushPullStateIsLearned() {
        var core = Fixture.instance(members: 3)
        _ = core.start(now: Fixture.at(0))
        let v1 = Self.notice(version: 1)
        let (_, directives) = core.onPushPullRequest(PushPullState(sender: "m1", isJoin: false, members: [], revocations: [v1]), now: Fixture.at(1))
        #expect(learned(directives) == [v1])
    }

    @Test func aBannedMemberIsForgottenAndEverythingFromOrAboutItIgnored() {
        var core = Fixture.instance(members: 5)
        let generation = core.start(now: Fixture.at(0)).probeTick?.generation ?? 0
        let banned = Fixture.id(3)
        let directives = core.ban([banned, core.localID], now: Fixture.at(1))
        #expect(directives.contains(.memberForgotten(banned)))
        #expect(core.member(banned) == nil && core.isBanned(banned) && !core.isBanned(core.localID))
        #expect(core.liveMemberCount == 3)
        // Its own datagrams: ignored whole (no ack to its ping).
        let ping = core.onDatagram(Fixture.datagram(from: 3, .ping(sequence: 1, target: core.localID)), from: Fixture.address(3), now: Fixture.at(2))
        #expect(ping.sends.isEmpty)
        // Others' news of it, even at a higher incarnation and a new address: ignored.
        let alive = MemberUpdate.alive(member: banned, incarnation: 9, address: PeerAddress(host: "10.9.9.9", port: 1), metadata: nil)
        _ = core.onDatagram(Fixture.datagram(from: 1, nil, updates: [alive]), from: Fixture.address(1), now: Fixture.at(3))
        #expect(core.member(banned) == nil)
        // Its push-pull, and its record in another's push-pull: ignored.
        let record = MemberRecord(id: banned, address: PeerAddress(host: "10.9.9.9", port: 1), status: .alive, incarnation: 10, metadata: nil)
        _ = core.onPushPullRequest(PushPullState(sender: banned, isJoin: true, members: [record]), now: Fixture.at(4))
        _ = core.onPushPullRequest(PushPullState(sender: Fixture.id(1), isJoin: false, members: [record]), now: Fixture.at(5))
        #expect(core.member(banned) == nil)
        #expect(!core.onPushPullRequest(PushPullState(sender: "m1", isJoin: false, members: []), now: Fixture.at(6)).reply.members.contains { $0.id == banned })
        // Never probed again, while the others are.
        var probed = Set<MemberID>()
        for second in 7..<40 {
            let tick = core.onTimer(.probeTick(generation: generation), now: Fixture.at(Double(second)))
            if let ping = tick.firstPing { probed.insert(ping.target) }
        }
        #expect(probed == [Fixture.id(1), Fixture.id(2), Fixture.id(4)])
    }

    @Test func aListPublishedAtOneMemberReachesEveryMemberOfTheSimulatedMesh() {
        let simulation = Simulation(members: 100, seed: 0x5EED)
        simulation.run(for: .seconds(10))
        let notice = Self.notice(version: 1)
        var knowing = Set<Int>()
        simulation.observeRevocations { member, learnt, _ in
            if learnt == notice { knowing.insert(member) }
            if knowing.count == 100 { simulation.stop() }
        }
        simulation.publishRevocation(0, notice)
        simulation.run(for: .seconds(120))
        #expect(knowing.count == 100, "only \(knowing.count) of 100 members learned the list (seed 0x5EED)")
        #expect((0..<100).allSatisfy { simulation.instance(of: $0).revocation(of: "lab") == notice })
    }
}
