import Foundation
import Membership
import MeshSimulator
import MeshTime
import MeshWire
import Testing

/// Federation grants in the membership core (Protocol.md §4.15): the newest version per
/// (domain, peer domain) is held, piggybacked and carried in push-pull, as revocation lists are.
@Suite struct CoreFederationTests {
    /// An encoded FederationGrant (unsigned: the shell verifies before the core sees one).
    static func notice(peer: String = "prod", version: UInt64) -> FederationGrantNotice {
        var body = Hostmesh_V1_FederationGrantBody()
        body.format = 1
        body.domain = "lab"
        body.peerDomain = peer
        body.version = version
        body.issuerKey = Data(repeating: 7, count: 32)
        body.peerDomainKey = Data(repeating: 8, count: 32)
        body.notBefore = 1
        body.notAfter = 2
        var wire = Hostmesh_V1_FederationGrant()
        wire.body = try! body.serializedData()
        wire.signature = Data(repeating: 9, count: 64)
        return try! GossipCodec.decodeFederationGrantNotice([UInt8](try! wire.serializedData()))
    }

    func learned(_ directives: [MembershipDirective]) -> [FederationGrantNotice] {
        directives.compactMap { if case .federationGrantLearned(let notice) = $0 { notice } else { nil } }
    }

    @Test func theCodecReadsTheKeyAndVersionAndRoundTripsTheSignedBytes() throws {
        let notice = Self.notice(version: 3)
        #expect(notice.key == "lab/prod" && notice.version == 3)
        let datagram = GossipDatagram(sender: "m1", primary: nil, updates: [.federationGrant(notice)])
        #expect(try GossipCodec.decodeDatagram(GossipCodec.encode(datagram)) == datagram)
        let state = PushPullState(sender: "m1", isJoin: false, members: [], federationGrants: [notice])
        #expect(try GossipCodec.decodePushPullState(GossipCodec.encode(state)) == state)
        #expect(throws: GossipCodecError.self) { try GossipCodec.decodeFederationGrantNotice([0xFF, 0x01]) }
    }

    @Test func aNewerGrantIsHeldReportedAndPiggybackedAnOlderOneIgnored() {
        var core = Fixture.instance(members: 5)
        _ = core.start(now: Fixture.at(0))
        let v2 = Self.notice(version: 2)
        let directives = core.onDatagram(Fixture.datagram(from: 1, nil, updates: [.federationGrant(v2)]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(learned(directives) == [v2])
        #expect(core.federationGrant(of: "lab/prod") == v2)
        #expect(core.pendingUpdates.contains(.federationGrant(v2)))
        let again = core.onDatagram(Fixture.datagram(from: 2, nil, updates: [.federationGrant(Self.notice(version: 1)), .federationGrant(v2)]),
                                    from: Fixture.address(2), now: Fixture.at(2))
        #expect(learned(again).isEmpty)
        #expect(core.federationGrant(of: "lab/prod")?.version == 2)
        let tick = core.onTimer(.gossipTick, now: Fixture.at(3))
        #expect(tick.sends.contains { $0.datagram.updates.contains(.federationGrant(v2)) })
        // Push-pull carries the newest grant of each pair; one learned from a state is reported.
        let edge = Self.notice(peer: "edge", version: 1)
        let (reply, fromState) = core.onPushPullRequest(PushPullState(sender: "m1", isJoin: false, members: [], federationGrants: [edge]), now: Fixture.at(4))
        #expect(learned(fromState) == [edge])
        #expect(reply.federationGrants == [edge, v2])
    }
}
