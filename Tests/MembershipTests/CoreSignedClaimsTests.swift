import Membership
import MeshSimulator
import MeshTime
import Testing

/// Signed membership in the pure core (Protocol.md §4.16), with the simulator's deterministic
/// stand-in for Ed25519 (`SimulatedClaimAuthority`: 64-byte signatures only the named member's
/// "key" reproduces).
@Suite("Core: signed membership claims")
struct CoreSignedClaimsTests {
    static func member(_ index: Int, members count: Int = 4, unknown: Set<MemberID> = []) -> MembershipInstance {
        let records = (0..<count).filter { $0 != index }.map {
            MemberRecord(id: Fixture.id($0), address: Fixture.address($0), status: .alive, incarnation: 0, metadata: nil)
        }
        var instance = MembershipInstance(
            id: Fixture.id(index), address: Fixture.address(index), random: SeededRandomGenerator(seed: 7),
            knownMembers: records, claims: SimulatedClaimAuthority(member: Fixture.id(index), unknownSigners: unknown))
        _ = instance.start(now: Fixture.at(0))
        return instance
    }

    static func signed(_ claim: MembershipClaim, by signer: Int) -> [UInt8] {
        SimulatedClaimAuthority.signature(of: claim.bytes, by: Fixture.id(signer))
    }

    static func rejections(_ directives: [MembershipDirective]) -> [ClaimRejection] {
        directives.compactMap { if case .claimRejected(let reason, _, _) = $0 { return reason } else { return nil } }
    }

    @Test("an alive claim signed with another member's key is dropped and counted as forged")
    func forgedAliveIsDropped() {
        var observer = Self.member(0)
        // Member 3 claims member 2 restarted at incarnation 5, at 3's own address, signing it itself.
        let claim = MembershipClaim.alive(member: Fixture.id(2), incarnation: 5, address: Fixture.address(3))
        let update = MemberUpdate.alive(
            member: Fixture.id(2), incarnation: 5, address: Fixture.address(3), metadata: nil,
            signature: Self.signed(claim, by: 3))
        let directives = observer.onDatagram(Fixture.datagram(from: 3, nil, updates: [update]), from: Fixture.address(3), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.forged])
        #expect(observer.member(Fixture.id(2))?.incarnation == 0)
        #expect(observer.member(Fixture.id(2))?.address == Fixture.address(2))
        #expect(observer.pendingUpdates.allSatisfy { $0.member != Fixture.id(2) }, "a forged claim is not passed on")
    }

    @Test("an unsigned alive claim is dropped and counted as unsigned; the signed one is applied and passed on with its signature")
    func unsignedAliveIsDroppedSignedApplied() {
        var observer = Self.member(0)
        let unsigned = MemberUpdate.alive(member: Fixture.id(2), incarnation: 3, address: Fixture.address(2), metadata: nil)
        var directives = observer.onDatagram(Fixture.datagram(from: 1, nil, updates: [unsigned]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.unsigned])
        #expect(observer.member(Fixture.id(2))?.incarnation == 0)

        let claim = MembershipClaim.alive(member: Fixture.id(2), incarnation: 3, address: Fixture.address(2))
        let signature = Self.signed(claim, by: 2)
        let good = MemberUpdate.alive(member: Fixture.id(2), incarnation: 3, address: Fixture.address(2), metadata: nil, signature: signature)
        directives = observer.onDatagram(Fixture.datagram(from: 1, nil, updates: [good]), from: Fixture.address(1), now: Fixture.at(2))
        #expect(Self.rejections(directives).isEmpty)
        #expect(observer.member(Fixture.id(2))?.incarnation == 3)
        #expect(observer.pendingUpdates.contains(good), "relayed with the member's own signature, not re-signed")
    }

    @Test("forged metadata (capacity, health) is dropped; the member's own signed metadata is applied")
    func forgedMetadataIsDropped() {
        var observer = Self.member(0)
        var metadata = MemberMetadata(version: 9, domain: "d", cores: 512, health: .ok)
        metadata.signature = Self.signed(.metadata(member: Fixture.id(2), metadata: metadata), by: 3)
        var directives = observer.onDatagram(
            Fixture.datagram(from: 3, nil, updates: [.metadata(member: Fixture.id(2), metadata: metadata)]),
            from: Fixture.address(3), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.forged])
        #expect(observer.member(Fixture.id(2))?.metadata == nil)

        // Altered after signing (cores changed): forged too.
        var altered = MemberMetadata(version: 9, domain: "d", cores: 8, health: .ok)
        altered.signature = Self.signed(.metadata(member: Fixture.id(2), metadata: altered), by: 2)
        altered.cores = 512
        directives = observer.onDatagram(
            Fixture.datagram(from: 3, nil, updates: [.metadata(member: Fixture.id(2), metadata: altered)]),
            from: Fixture.address(3), now: Fixture.at(2))
        #expect(Self.rejections(directives) == [.forged])

        var genuine = MemberMetadata(version: 9, domain: "d", cores: 8, health: .degraded)
        genuine.signature = Self.signed(.metadata(member: Fixture.id(2), metadata: genuine), by: 2)
        directives = observer.onDatagram(
            Fixture.datagram(from: 1, nil, updates: [.metadata(member: Fixture.id(2), metadata: genuine)]),
            from: Fixture.address(1), now: Fixture.at(3))
        #expect(Self.rejections(directives).isEmpty)
        #expect(observer.member(Fixture.id(2))?.metadata == genuine)
    }

    @Test("a suspicion needs its accuser's signature; a leave needs the member's")
    func accusationsAndLeavesAreSigned() {
        var observer = Self.member(0)
        // Member 3 accuses member 2 but signs as if it were member 1.
        let forged = MemberUpdate.suspect(
            member: Fixture.id(2), incarnation: 0, from: Fixture.id(1),
            signature: Self.signed(.suspect(member: Fixture.id(2), incarnation: 0, accuser: Fixture.id(1)), by: 3))
        var directives = observer.onDatagram(Fixture.datagram(from: 3, nil, updates: [forged]), from: Fixture.address(3), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.forged])
        #expect(observer.status(of: Fixture.id(2)) == .alive)

        let forgedLeave = MemberUpdate.left(
            member: Fixture.id(2), incarnation: 0, signature: Self.signed(.leave(member: Fixture.id(2), incarnation: 0), by: 3))
        directives = observer.onDatagram(Fixture.datagram(from: 3, nil, updates: [forgedLeave]), from: Fixture.address(3), now: Fixture.at(2))
        #expect(Self.rejections(directives) == [.forged])
        #expect(observer.status(of: Fixture.id(2)) == .alive)

        let genuine = MemberUpdate.suspect(
            member: Fixture.id(2), incarnation: 0, from: Fixture.id(3),
            signature: Self.signed(.suspect(member: Fixture.id(2), incarnation: 0, accuser: Fixture.id(3)), by: 3))
        directives = observer.onDatagram(Fixture.datagram(from: 3, nil, updates: [genuine]), from: Fixture.address(3), now: Fixture.at(3))
        #expect(Self.rejections(directives).isEmpty)
        #expect(observer.status(of: Fixture.id(2)) == .suspect)
    }

    @Test("this member signs its own alive once per incarnation, and its own suspicions")
    func localClaimsAreSigned() {
        let instance = Self.member(0)
        guard case .alive(_, 0, _, let metadata, let signature) = instance.pendingUpdates.first(where: { $0.member == Fixture.id(0) }) else {
            Issue.record("no alive of its own queued")
            return
        }
        let claim = MembershipClaim.alive(member: Fixture.id(0), incarnation: 0, address: Fixture.address(0))
        #expect(signature == Self.signed(claim, by: 0))
        #expect(metadata?.signature == Self.signed(.metadata(member: Fixture.id(0), metadata: instance.localMetadata), by: 0))
    }

    @Test("a claim by a member whose certificate is not held is dropped (fail closed) and a push-pull with the sender fetches it, at most once per probe interval")
    func unknownSignerFailsClosedAndPulls() {
        var observer = Self.member(0, members: 3, unknown: [Fixture.id(9)])
        let claim = MembershipClaim.alive(member: Fixture.id(9), incarnation: 1, address: Fixture.address(9))
        let update = MemberUpdate.alive(
            member: Fixture.id(9), incarnation: 1, address: Fixture.address(9), metadata: nil, signature: Self.signed(claim, by: 9))
        var directives = observer.onDatagram(Fixture.datagram(from: 1, nil, updates: [update]), from: Fixture.address(1), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.unknownSigner])
        #expect(observer.member(Fixture.id(9)) == nil)
        #expect(directives.pushPulls.map(\.member) == [Fixture.id(1)])
        directives = observer.onDatagram(Fixture.datagram(from: 1, nil, updates: [update]), from: Fixture.address(1), now: Fixture.at(1.2))
        #expect(directives.pushPulls.isEmpty, "rate-limited")
    }

    @Test("a sender not known yet whose own claim cannot be checked is pulled from at the datagram's source address")
    func anUnknownSenderIsPulledFromAtItsSource() {
        // Member 9 joined through a seed that failed before it told 0 about 9: 9's probes to 0
        // carry its own alive, signed by a key 0 holds no certificate for.
        var observer = Self.member(0, members: 3, unknown: [Fixture.id(9)])
        let claim = MembershipClaim.alive(member: Fixture.id(9), incarnation: 0, address: Fixture.address(9))
        let update = MemberUpdate.alive(
            member: Fixture.id(9), incarnation: 0, address: Fixture.address(9), metadata: nil, signature: Self.signed(claim, by: 9))
        let directives = observer.onDatagram(Fixture.datagram(from: 9, nil, updates: [update]), from: Fixture.address(9), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.unknownSigner])
        #expect(observer.member(Fixture.id(9)) == nil, "not learned before its certificate")
        #expect(directives.pushPulls.map(\.member) == [Fixture.id(9)])
        #expect(directives.pushPulls.map(\.address) == [Fixture.address(9)])
    }

    @Test("a sender not known yet is pulled from at the channel address its own dropped alive names, by later pings too; a known member's metadata still decides")
    func anUnknownSenderIsPulledFromAtItsClaimedChannel() {
        // The agent's push-pull runs over the secure channel, not at the gossip port a
        // datagram comes from: without the claimed channel address the pull could not connect.
        var observer = Self.member(0, members: 3, unknown: [Fixture.id(9)])
        let channel = PeerAddress(host: "10.0.0.9", port: 7000)
        let metadata = MemberMetadata(version: 1, domain: "lab", channelAddress: channel)
        let claim = MembershipClaim.alive(member: Fixture.id(9), incarnation: 0, address: Fixture.address(9))
        let update = MemberUpdate.alive(
            member: Fixture.id(9), incarnation: 0, address: Fixture.address(9), metadata: metadata, signature: Self.signed(claim, by: 9))
        let first = observer.onDatagram(Fixture.datagram(from: 9, nil, updates: [update]), from: Fixture.address(9), now: Fixture.at(1))
        #expect(Self.rejections(first) == [.unknownSigner])
        #expect(first.pushPulls.map(\.channelAddress) == [channel])
        #expect(first.pushPulls.map(\.address) == [Fixture.address(9)], "the gossip address stays the fallback")
        // A second probe a probe interval later, with nothing piggybacked: still that address.
        let ping = observer.onDatagram(Fixture.datagram(from: 9, .ping(sequence: 4, target: Fixture.id(0))), from: Fixture.address(9), now: Fixture.at(3))
        #expect(ping.pushPulls.map(\.channelAddress) == [channel])
        // A known sender is pulled from where the shell finds it (its verified metadata).
        let other = MemberUpdate.alive(
            member: Fixture.id(9), incarnation: 0, address: Fixture.address(9), metadata: metadata, signature: Self.signed(claim, by: 9))
        let known = observer.onDatagram(Fixture.datagram(from: 1, nil, updates: [other]), from: Fixture.address(1), now: Fixture.at(5))
        #expect(known.pushPulls.map(\.member) == [Fixture.id(1)])
        #expect(known.pushPulls.map(\.channelAddress) == [nil])
    }

    @Test("a forged alive of a member not known yet names no channel: it cannot repoint the pull")
    func aForgedAliveNamesNoChannel() {
        // 8's certificate is held (it is not an unknown signer), but 8 is not in the table yet;
        // the claim is signed by 1, so it is forged, and its channel address is not taken.
        var observer = Self.member(0, members: 3)
        let metadata = MemberMetadata(version: 1, domain: "lab", channelAddress: PeerAddress(host: "10.6.6.6", port: 7000))
        let claim = MembershipClaim.alive(member: Fixture.id(8), incarnation: 0, address: Fixture.address(8))
        let forged = MemberUpdate.alive(
            member: Fixture.id(8), incarnation: 0, address: Fixture.address(8), metadata: metadata, signature: Self.signed(claim, by: 1))
        let directives = observer.onDatagram(Fixture.datagram(from: 8, nil, updates: [forged]), from: Fixture.address(8), now: Fixture.at(1))
        #expect(Self.rejections(directives) == [.forged])
        #expect(directives.pushPulls.map(\.member) == [Fixture.id(8)])
        #expect(directives.pushPulls.map(\.channelAddress) == [nil])
    }

    @Test("a ping from a member not known yet, with no claim at all, also fetches its state")
    func aPingFromAnUnknownMemberPulls() {
        var observer = Self.member(0, members: 3, unknown: [Fixture.id(9)])
        let directives = observer.onDatagram(Fixture.datagram(from: 9, .ping(sequence: 4, target: Fixture.id(0))), from: Fixture.address(9), now: Fixture.at(1))
        #expect(directives.pushPulls.map(\.address) == [Fixture.address(9)])
        let again = observer.onDatagram(Fixture.datagram(from: 9, .ping(sequence: 5, target: Fixture.id(0))), from: Fixture.address(9), now: Fixture.at(1.1))
        #expect(again.pushPulls.isEmpty, "rate-limited")
    }

    @Test("push-pull records carry the members' own signatures; a forged record is dropped")
    func pushPullRecordsAreSigned() {
        let source = Self.member(1)
        var observer = Self.member(0, members: 2)
        // Member 1's state describes itself (signed) and a member 5 it never heard from with no signature.
        var state = source.onPushPullRequestState()
        state.members.append(MemberRecord(id: Fixture.id(5), address: Fixture.address(5), status: .alive, incarnation: 0, metadata: nil))
        let directives = observer.onPushPullResponse(
            state, for: PushPullRequest(address: Fixture.address(1), member: Fixture.id(1), purpose: .antiEntropy, state: state),
            now: Fixture.at(1))
        #expect(observer.member(Fixture.id(5)) == nil)
        #expect(Self.rejections(directives).contains(.unsigned))
        let own = state.members.first { $0.id == Fixture.id(1) }
        #expect(own?.signature == Self.signed(.alive(member: Fixture.id(1), incarnation: 0, address: Fixture.address(1)), by: 1))
    }

    @Test("the signature input layout of an alive claim is the documented one")
    func aliveClaimBytes() {
        let claim = MembershipClaim.alive(member: MemberID("host-a"), incarnation: 7, address: PeerAddress(host: "10.0.0.1", port: 7946))
        #expect(claim.bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
            == "686f73746d6573682f676f737369702d636c61696d2f7631010006686f73742d610000000000000007000831302e302e302e311f0a")
    }
}

extension MembershipInstance {
    /// The state this member sends in a push-pull (a test helper over the public API).
    fileprivate func onPushPullRequestState() -> PushPullState {
        var copy = self
        return copy.onPushPullRequest(PushPullState(sender: localID, isJoin: false, members: []), now: MeshInstant(nanosecondsSinceOrigin: 1)).reply
    }
}
