import MeshCrypto
import MeshIdentity
import MeshTime
import NIOCore
@testable import SecureChannel
import Testing

@Suite struct HandshakeCoreTests {
    let f = Fixtures()

    @Test func mutualAuthenticationAgreesOnKeysAndPeers() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        let (sa, sb) = try Fixtures.handshake(initiator: a, responder: b, now: f.now)
        #expect(sa.peer.hostID == "node-b" && sb.peer.hostID == "node-a")
        #expect(sa.peer.domain == "lab" && sb.peer.domain == "lab")
        #expect(sa.channelBinding == sb.channelBinding)
        #expect(sa.aead == sb.aead && sa.aead == AEADAlgorithm.bulkPreference[0])
        #expect(sa.sendKey.constantTimeEquals(sb.receiveKey) && sb.sendKey.constantTimeEquals(sa.receiveKey))
        #expect(!sa.sendKey.constantTimeEquals(sa.receiveKey))
        #expect(sa.exportKey(label: "x").constantTimeEquals(sb.exportKey(label: "x")))
        #expect(!sa.exportKey(label: "x").constantTimeEquals(sa.exportKey(label: "y")))
        // A second handshake between the same hosts has fresh keys (ephemerals).
        let (sa2, _) = try Fixtures.handshake(initiator: a, responder: b, now: f.now)
        #expect(!sa2.sendKey.constantTimeEquals(sa.sendKey))
    }

    @Test func cipherNegotiationPicksResponderPreferenceAmongOffered() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        let (sa, sb) = try Fixtures.handshake(initiator: a, responder: b,
                                              initiatorPolicy: ChannelPolicy(aeads: [.xchacha20poly1305]),
                                              responderPolicy: ChannelPolicy(aeads: [.aes256gcm, .xchacha20poly1305]), now: f.now)
        #expect(sa.aead == .xchacha20poly1305 && sb.aead == .xchacha20poly1305)
        #expect(throws: SecureChannelError.self) {
            try Fixtures.handshake(initiator: a, responder: b, initiatorPolicy: ChannelPolicy(aeads: [.xchacha20poly1305]),
                                   responderPolicy: ChannelPolicy(aeads: [.aes256gcm]), now: f.now)
        }
    }

    func code(_ body: () throws -> Void) -> CloseCode? {
        do { try body(); return nil } catch let e as SecureChannelError { return e.code } catch { return .internalError }
    }

    @Test func responderCertificateProblemsAreNamed() {
        let a = f.host("node-a")
        #expect(code { _ = try Fixtures.handshake(initiator: a, responder: f.host("node-b", notAfter: f.now - 10), now: f.now) } == .certificateExpired)
        #expect(code { _ = try Fixtures.handshake(initiator: a, responder: f.host("node-b", notBefore: f.now + 600), now: f.now) } == .certificateNotYetValid)
        // Responder from another domain, which the initiator does not trust: it cannot even
        // key the initiation MAC for it... but here b trusts lab too and is certified by prod.
        let foreign = f.host("node-b", domain: f.prod, trusting: [f.lab, f.prod])
        #expect(code { _ = try Fixtures.handshake(initiator: a, responder: foreign, now: f.now) } == .unknownIssuer)
        let trustsBoth = f.host("node-a", trusting: [f.lab, f.prod])
        #expect(code { _ = try Fixtures.handshake(initiator: trustsBoth, responder: foreign, initiatorPolicy: ChannelPolicy(requiredDomain: "lab"), now: f.now) } == .wrongDomain)
        #expect(code { _ = try Fixtures.handshake(initiator: a, responder: f.host("node-b"), initiatorPolicy: ChannelPolicy(expectedPeer: "node-c"), now: f.now) } == .unexpectedPeer)
    }

    @Test func initiatorCertificateProblemsAreRefusedWithAnAuthenticatedReason() throws {
        let b = f.host("node-b")
        for (initiator, expected) in [(f.host("node-a", notAfter: f.now - 1), CloseCode.certificateExpired),
                                      (f.host("node-a", domain: f.prod, trusting: [f.lab]), CloseCode.unknownIssuer)] {
            var i = try HandshakeInitiator(credentials: initiator, policy: ChannelPolicy(targetDomain: f.lab.trustAnchor), ephemeral: KeyAgreementKeyPair())
            var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
            let m2 = try Fixtures.frame(r.respond(to: r.validateInit(Fixtures.frame(i.start())), ephemeral: KeyAgreementKeyPair()))
            let (m3, initiatorSession) = try i.receive(m2, now: f.now)
            guard case .refused(let session, let error) = try r.receiveFinish(Fixtures.frame(m3), now: f.now) else {
                Issue.record("initiator with a bad certificate was accepted"); continue
            }
            #expect(error.code == expected)
            // The refusal travels as a Close record the initiator can authenticate.
            var sealer = RecordSealer(session: session, rekeyAfterBytes: .max, rekeyAfter: .seconds(Int64.max), now: .origin)
            var out = ByteBuffer()
            try sealer.sealClose(error.code, error.detail, into: &out)
            var opener = RecordOpener(session: initiatorSession)
            var sink = ByteBuffer()
            guard case .closed(let seen) = try opener.open(Fixtures.frame(Array(out.readableBytesView)), appendingTo: &sink) else {
                Issue.record("no close"); continue
            }
            #expect(seen.code == expected && seen.byPeer)
        }
    }

    @Test func cheapChecksRejectUnknownDomainAndBadMACBeforeAnyDH() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var m1 = i.start()
        let r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        m1[m1.count - 1] ^= 1
        #expect(code { _ = try r.validateInit(Fixtures.frame(m1)) } == .badMAC)
        let stranger = f.host("node-x", domain: f.prod, trusting: [f.prod])
        var si = try HandshakeInitiator(credentials: stranger, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        #expect(code { _ = try r.validateInit(Fixtures.frame(si.start())) } == .unknownDomain)
    }

    @Test func tamperedHandshakeMessagesFailToDecrypt() throws {
        let a = f.host("node-a"), b = f.host("node-b")
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        var m2 = try r.respond(to: r.validateInit(Fixtures.frame(i.start())), ephemeral: KeyAgreementKeyPair())
        m2[5 + 40] ^= 0x01 // inside the encrypted static key
        #expect(code { _ = try i.receive(Fixtures.frame(m2), now: f.now) } == .handshakeDecryptFailed)
    }

    @Test func identityHidingHoldsForTheResponderStaticKey() throws {
        // Message 2 carries the responder's static key only encrypted.
        let a = f.host("node-a"), b = f.host("node-b")
        var i = try HandshakeInitiator(credentials: a, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: b, policy: ChannelPolicy())
        let m2 = try r.respond(to: r.validateInit(Fixtures.frame(i.start())), ephemeral: KeyAgreementKeyPair())
        let needle = b.identity.staticKey.publicKey.bytes
        #expect(!Array(m2).windows(ofCount: 32).contains { Array($0) == needle })
    }
}

extension Array {
    func windows(ofCount n: Int) -> [ArraySlice<Element>] {
        guard count >= n else { return [] }
        return (0...(count - n)).map { self[$0..<($0 + n)] }
    }
}

@Suite struct HandshakeRateLimiterTests {
    @Test func burstThenSustainedRatePerSource() {
        var limiter = HandshakeRateLimiter(ratePerSecond: 10, burst: 5, maxSources: 3)
        let allowed = (0..<20).filter { _ in limiter.allow(source: "10.0.0.1", now: .origin) }.count
        #expect(allowed == 5)
        // Another source has its own bucket.
        let other = limiter.allow(source: "10.0.0.2", now: .origin)
        #expect(other)
        // After 1 s, 10 more tokens (capped at the burst of 5).
        let refilled = (0..<20).filter { _ in limiter.allow(source: "10.0.0.1", now: MeshInstant(nanosecondsSinceOrigin: 1_000_000_000)) }.count
        #expect(refilled == 5)
        // Tracking is bounded: new sources evict the stalest.
        let drained = limiter.allow(source: "10.0.0.1", now: MeshInstant(nanosecondsSinceOrigin: 1_000_000_001))
        #expect(!drained)
        for i in 3..<50 { _ = limiter.allow(source: "10.0.0.\(i)", now: MeshInstant(nanosecondsSinceOrigin: 1_000_000_002)) }
        let forgotten = limiter.allow(source: "10.0.0.1", now: MeshInstant(nanosecondsSinceOrigin: 1_000_000_003))
        #expect(forgotten) // evicted, so it starts again with a full burst
    }
}
