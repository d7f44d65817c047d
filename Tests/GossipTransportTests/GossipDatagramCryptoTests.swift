@testable import GossipTransport
import Membership
import MeshTime
import Testing

@Suite("Gossip datagram sealing, opening and replay")
struct GossipDatagramCryptoTests {
    let key = GossipKey.generate()
    var ring: GossipKeyring { get throws { try GossipKeyring(primary: key) } }
    let ping = GossipDatagram(sender: "node-a", primary: .ping(sequence: 9, target: "node-b"))

    @Test func sealThenOpen() throws {
        var sealer = GossipDatagramSealer(session: GossipSession(epoch: 1, salt: 2))
        var opener = GossipDatagramOpener(localID: "node-b")
        let plaintext = GossipCodec.encode(ping)
        let sealed = sealer.seal(plaintext, for: "node-b", with: try ring)
        #expect(sealed.count == plaintext.count + GossipEnvelope.overhead)
        #expect(GossipEnvelope.overhead == 40)
        #expect(sealed[0] == 2)
        #expect(try opener.open(sealed, with: ring).get() == ping)
        #expect(sealer.lastSequence == 1)
    }

    @Test func headerIsAuthenticated() throws {
        var sealer = GossipDatagramSealer()
        var opener = GossipDatagramOpener(localID: "node-b")
        let sealed = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: try ring)
        // Flip one bit in every position of the header (after the version and key id) and of the body.
        for index in 5..<sealed.count {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(reason(opener.open(tampered, with: try ring)) == .forged, "byte \(index)")
        }
        #expect(reason(opener.open(sealed, with: try ring)) == nil)
    }

    @Test func dropReasons() throws {
        var sealer = GossipDatagramSealer()
        var opener = GossipDatagramOpener(localID: "node-b", maxDatagramSize: 1200)
        let ring = try ring
        #expect(reason(opener.open([UInt8](repeating: 0, count: 1201), with: ring)) == .oversized)
        #expect(reason(opener.open([1, 2, 3], with: ring)) == .malformed)
        var wrongVersion = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        wrongVersion[0] = 1  // the layout before the receiver was bound
        #expect(reason(opener.open(wrongVersion, with: ring)) == .malformed)
        var strangerSealer = GossipDatagramSealer()
        let stranger = strangerSealer.seal(GossipCodec.encode(ping), for: "node-b", with: try GossipKeyring(primary: .generate()))
        #expect(reason(opener.open(stranger, with: ring)) == .unknownKey)
        let notGossip = sealer.seal([0xff, 0xff, 0xff], for: "node-b", with: ring)
        #expect(reason(opener.open(notGossip, with: ring)) == .undecodable)
        let valid = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        #expect(reason(opener.open(valid, with: ring)) == nil)
        #expect(reason(opener.open(valid, with: ring)) == .replayed)
    }

    /// Issue 19 finding 6: replay windows are per sender, so a datagram sniffed between A and B
    /// and replayed to C (whose window for A has not seen it) was accepted once. The receiver is
    /// bound into the AAD: C refuses it, counted as `forged`; B still accepts it exactly once.
    @Test func datagramSealedForOneMemberIsRefusedByAnother() throws {
        let ring = try ring
        var sealer = GossipDatagramSealer()
        var atB = GossipDatagramOpener(localID: "node-b")
        var atC = GossipDatagramOpener(localID: "node-c")
        let forB = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        #expect(reason(atC.open(forB, with: ring)) == .forged)
        #expect(atC.senderCount == 0)
        #expect(reason(atB.open(forB, with: ring)) == nil)
        #expect(reason(atB.open(forB, with: ring)) == .replayed)
        // A receiver id that is a prefix of another's, or extends it, is a different binding.
        var atLonger = GossipDatagramOpener(localID: "node-bb")
        #expect(reason(atLonger.open(forB, with: ring)) == .forged)
        // C still opens what is sealed for it.
        let forC = sealer.seal(GossipCodec.encode(ping), for: "node-c", with: ring)
        #expect(reason(atC.open(forC, with: ring)) == nil)
    }

    @Test func replayWindowAcceptsReorderingButNotRepeats() throws {
        let ring = try ring
        var sealer = GossipDatagramSealer()
        var opener = GossipDatagramOpener(localID: "node-b")
        let sealed = (0..<1100).map { _ in sealer.seal(GossipCodec.encode(ping), for: "node-b", with: ring) }
        #expect(reason(opener.open(sealed[5], with: ring)) == nil)
        #expect(reason(opener.open(sealed[2], with: ring)) == nil)  // late, inside the window
        #expect(reason(opener.open(sealed[2], with: ring)) == .replayed)
        #expect(reason(opener.open(sealed[1090], with: ring)) == nil)
        #expect(reason(opener.open(sealed[3], with: ring)) == .replayed)  // fell out of the 1024 window
        #expect(reason(opener.open(sealed[100], with: ring)) == nil)  // still inside
        #expect(reason(opener.open(sealed[1099], with: ring)) == nil)
    }

    @Test func restartedSenderIsAcceptedAndItsOldSessionRefused() throws {
        let ring = try ring
        var opener = GossipDatagramOpener(localID: "node-b")
        var firstRun = GossipDatagramSealer(session: GossipSession(epoch: 1_000, salt: 9))
        let old = (0..<3).map { _ in firstRun.seal(GossipCodec.encode(ping), for: "node-b", with: ring) }
        #expect(reason(opener.open(old[0], with: ring)) == nil)
        #expect(reason(opener.open(old[1], with: ring)) == nil)
        // The member restarts: a later session, its sequence starts again at 1.
        var secondRun = GossipDatagramSealer(session: GossipSession(epoch: 2_000, salt: 1))
        let new = secondRun.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        #expect(reason(opener.open(new, with: ring)) == nil)
        #expect(reason(opener.open(old[2], with: ring)) == .replayed)  // the earlier run is over
        // A member whose clock went back is refused until it is forgotten (declared dead).
        var clockWentBack = GossipDatagramSealer(session: GossipSession(epoch: 1_500, salt: 1))
        let behind = clockWentBack.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        #expect(reason(opener.open(behind, with: ring)) == .replayed)
        opener.forget(sender: "node-a")
        #expect(reason(opener.open(behind, with: ring)) == nil)
    }

    @Test func sendersAreTrackedApart() throws {
        let ring = try ring
        var a = GossipDatagramSealer(session: GossipSession(epoch: 5, salt: 5))
        var b = GossipDatagramSealer(session: GossipSession(epoch: 5, salt: 5))  // same session, other sender
        var opener = GossipDatagramOpener(localID: "node-b")
        let fromA = a.seal(GossipCodec.encode(ping), for: "node-b", with: ring)
        let fromB = b.seal(GossipCodec.encode(GossipDatagram(sender: "node-c", primary: nil)), for: "node-b", with: ring)
        #expect(reason(opener.open(fromA, with: ring)) == nil)
        #expect(reason(opener.open(fromB, with: ring)) == nil)
        #expect(opener.senderCount == 2)
    }

    @Test func rotation() throws {
        let newKey = GossipKey.generate()
        var senderRing = try ring
        var receiverRing = try ring
        var sealer = GossipDatagramSealer()
        var opener = GossipDatagramOpener(localID: "node-b")
        try receiverRing.install(newKey)
        try senderRing.install(newKey)
        try senderRing.use(newKey.id)
        let sealedNew = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: senderRing)
        #expect(reason(opener.open(sealedNew, with: receiverRing)) == nil)
        let sealedOld = sealer.seal(GossipCodec.encode(ping), for: "node-b", with: try ring)
        try receiverRing.use(newKey.id)
        try receiverRing.remove(key.id)
        // A cached cipher of the removed key must not keep opening its datagrams.
        #expect(reason(opener.open(sealedOld, with: receiverRing)) == .unknownKey)
    }

    @Test func dropLogIsRateLimitedPerReason() {
        var limiter = DropLogLimiter(interval: .seconds(10))
        func at(_ seconds: Int64) -> MeshInstant { MeshInstant(sinceOrigin: .seconds(seconds)) }
        #expect(limiter.record(.forged, now: at(0)) == 0)
        #expect(limiter.record(.forged, now: at(1)) == nil)
        #expect(limiter.record(.replayed, now: at(2)) == 0)
        #expect(limiter.record(.forged, now: at(9)) == nil)
        #expect(limiter.record(.forged, now: at(10)) == 2)
        #expect(limiter.record(.forged, now: at(11)) == nil)
    }

    private func reason(_ result: Result<GossipDatagram, GossipDrop>) -> GossipDropReason? {
        if case .failure(let drop) = result { return drop.reason }
        return nil
    }
}
