import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire
@testable import SecureChannel
import Testing

/// The pure re-authentication core (Protocol.md §3.9): what a side announces when its host
/// rotates, and every check of what the peer announces. No sockets, `now` passed explicitly.
@Suite struct ChannelReauthenticationTests {
    let f = Fixtures()
    let now: Int64 = 50_000

    /// A channel node-a (initiator) -> node-b (responder), and node-b's rotation to a new key.
    struct Setup {
        let a: ChannelCredentials
        let b: ChannelCredentials
        let aSide: ChannelReauthentication
        let bSide: ChannelReauthentication
        let rotation: KeyRotationNotice
    }

    func setup(serial: UInt64 = 2) throws -> Setup {
        let a = f.host("node-a", notBefore: 1_000, notAfter: 100_000)
        let b = f.host("node-b", notBefore: 1_000, notAfter: 100_000)
        let (ia, rb) = try Fixtures.handshake(initiator: a, responder: b, now: now)
        let new = try HostIdentity(hostID: "node-b")
        let certificate = f.lab.certify(new.publicKeys, serial: serial, notBefore: 1_000, notAfter: 100_000)
        let record = RotationRecord(from: b.identity, to: new, domain: "lab", now: now)
        return Setup(a: a, b: b, aSide: ChannelReauthentication(session: ia, localKey: a.identity.signingKey.publicKey),
                     bSide: ChannelReauthentication(session: rb, localKey: b.identity.signingKey.publicKey),
                     rotation: KeyRotationNotice(identity: new, certificate: certificate, record: record))
    }

    func refusal(_ body: () throws -> Void) -> SecureChannelError? {
        do { try body(); return nil } catch { return error as? SecureChannelError ?? SecureChannelError(.internalError, "not a channel error: \(error)") }
    }

    @Test func theRotatingSideAnnouncesAndThePeerMovesToTheNewCertificate() throws {
        var s = try setup()
        var b = s.bSide, a = s.aSide
        let content = try #require({ () -> [UInt8]? in b.announce(s.rotation) }())
        #expect(b.localSequence == 1 && b.localKey == s.rotation.identity.signingKey.publicKey)
        let accepted = try a.accept(content, trust: s.a.trust, now: now)
        #expect(accepted.previous == s.b.certificate && accepted.current == s.rotation.certificate && accepted.sequence == 1)
        #expect(a.peerCertificate == s.rotation.certificate && a.peerSequence == 1)
        // The same rotation again: this side already moved, so nothing is announced twice.
        #expect(b.announce(s.rotation) == nil)
        // A second rotation chains from the new key.
        let newer = try HostIdentity(hostID: "node-b")
        let second = KeyRotationNotice(identity: newer, certificate: f.lab.certify(newer.publicKeys, serial: 3, notBefore: 1_000, notAfter: 100_000),
                                       record: RotationRecord(from: s.rotation.identity, to: newer, domain: "lab", now: now))
        let content2 = try #require({ () -> [UInt8]? in b.announce(second) }())
        #expect(try a.accept(content2, trust: s.a.trust, now: now).sequence == 2)
        s = try setup()
        // A rotation that does not start from the key the channel holds is not announced.
        var other = s.bSide
        #expect(other.announce(second) == nil && other.localSequence == 0)
    }

    @Test func aReplayedReauthenticationIsRefusedByName() throws {
        let s = try setup()
        var b = s.bSide, a = s.aSide
        let content = try #require({ () -> [UInt8]? in b.announce(s.rotation) }())
        _ = try a.accept(content, trust: s.a.trust, now: now)
        let error = refusal { _ = try a.accept(content, trust: s.a.trust, now: now) }
        #expect(error?.code == .reauthenticationRefused && error?.detail.contains("replayed") == true, "\(String(describing: error))")
        #expect(a.peerSequence == 1)
    }

    @Test func aReauthenticationBoundToAnotherChannelIsRefused() throws {
        let s = try setup()
        var a = s.aSide
        // node-b's rotation announced on another channel (another handshake hash).
        let (_, otherResponder) = try Fixtures.handshake(initiator: f.host("node-c", notBefore: 1_000, notAfter: 100_000), responder: s.b, now: now)
        var elsewhere = ChannelReauthentication(session: otherResponder, localKey: s.b.identity.signingKey.publicKey)
        let content = try #require({ () -> [UInt8]? in elsewhere.announce(s.rotation) }())
        let error = refusal { _ = try a.accept(content, trust: s.a.trust, now: now) }
        #expect(error?.code == .reauthenticationRefused && error?.detail.contains("another channel's handshake hash") == true, "\(String(describing: error))")
        #expect(a.peerCertificate == s.b.certificate) // nothing changed
    }

    @Test func aWrongSignatureIsRefused() throws {
        let s = try setup()
        var a = s.aSide
        // Signed by the old key instead of the new one.
        let wrongSigner = KeyRotationNotice(identity: s.b.identity, certificate: s.rotation.certificate, record: s.rotation.record)
        let content = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: wrongSigner)
        let error = refusal { _ = try a.accept(content, trust: s.a.trust, now: now) }
        #expect(error?.code == .reauthenticationRefused && error?.detail.contains("signature does not verify") == true, "\(String(describing: error))")
        // A signature of the wrong length.
        var wire = try Hostmesh_V1_ChannelReauth(serializedBytes: ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: s.rotation))
        wire.signature = Data(wire.signature.prefix(10))
        let short = refusal { _ = try a.accept(try! wire.serializedBytes(), trust: s.a.trust, now: now) }
        #expect(short?.detail.contains("not 64") == true)
    }

    @Test func anotherHostsCertificateIsRefused() throws {
        let s = try setup()
        var a = s.aSide
        let impostor = try HostIdentity(hostID: "node-c")
        let certificate = f.lab.certify(impostor.publicKeys, serial: 9, notBefore: 1_000, notAfter: 100_000)
        let rotation = KeyRotationNotice(identity: impostor, certificate: certificate, record: RotationRecord(from: s.b.identity, to: impostor, domain: "lab", now: now))
        let content = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: rotation)
        let error = refusal { _ = try a.accept(content, trust: s.a.trust, now: now) }
        #expect(error?.code == .reauthenticationRefused && error?.detail.contains("for host node-c, but the channel authenticated node-b") == true, "\(String(describing: error))")
    }

    @Test func aReflectedOrMalformedOrUnlinkedReauthenticationIsRefused() throws {
        let s = try setup()
        var a = s.aSide
        // The peer claims the initiator's role (this side's).
        let reflected = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: true, sequence: 1, rotation: s.rotation)
        #expect(refusal { _ = try a.accept(reflected, trust: s.a.trust, now: now) }?.detail.contains("reflected") == true)
        // Garbage and an unknown format.
        #expect(refusal { _ = try a.accept([1, 2, 3, 0xff], trust: s.a.trust, now: now) }?.detail.contains("does not decode") == true)
        let future = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: s.rotation, format: 2)
        #expect(refusal { _ = try a.accept(future, trust: s.a.trust, now: now) }?.detail.contains("format 2") == true)
        // A rotation record signed by the new key only (an impostor's record from its own key).
        let impostor = try HostIdentity(hostID: "node-b")
        let oneKey = KeyRotationNotice(identity: s.rotation.identity, certificate: s.rotation.certificate,
                                       record: RotationRecord(from: impostor, to: s.rotation.identity, domain: "lab", now: now))
        let unlinked = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: oneKey)
        let error = refusal { _ = try a.accept(unlinked, trust: s.a.trust, now: now) }
        #expect(error?.detail.contains("retires another key") == true, "\(String(describing: error))")
        // An out-of-date record.
        let stale = KeyRotationNotice(identity: s.rotation.identity, certificate: s.rotation.certificate,
                                      record: RotationRecord(from: s.b.identity, to: s.rotation.identity, domain: "lab", now: now - 90_000))
        let old = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: stale)
        #expect(refusal { _ = try a.accept(old, trust: s.a.trust, now: now) }?.detail.contains("out of date") == true)
        // A certificate from an untrusted domain.
        let foreign = KeyRotationNotice(identity: s.rotation.identity, certificate: f.prod.certify(s.rotation.identity.publicKeys, serial: 5, notBefore: 1_000, notAfter: 100_000),
                                        record: s.rotation.record)
        let untrusted = ChannelReauthentication.message(binding: s.bSide.binding, fromInitiator: false, sequence: 1, rotation: foreign)
        #expect(refusal { _ = try a.accept(untrusted, trust: s.a.trust, now: now) }?.detail.contains("certificate is refused") == true)
        #expect(a.peerCertificate == s.b.certificate && a.peerSequence == 0) // nothing changed by any of them
    }

    @Test func aRetiredKeyIsAcceptedDuringItsGracePeriodThenRefused() throws {
        let s = try setup()
        let registry = s.a.trust.retiredKeys
        registry.graceSeconds = 600
        let oldKey = s.b.identity.signingKey.publicKey
        let seen = Collected()
        _ = registry.watch(hostID: "node-b", key: oldKey) { seen.append($0) }
        registry.retire(hostID: "node-b", key: oldKey, now: now)
        #expect(seen.items.map(\.refusedFrom) == [now + 600])
        // Retiring again keeps the first deadline.
        #expect(registry.retire(hostID: "node-b", key: oldKey, now: now + 100).refusedFrom == now + 600)
        #expect(throws: Never.self) { try s.a.trust.verify(s.b.certificate, now: now + 599) }
        do {
            try s.a.trust.verify(s.b.certificate, now: now + 600)
            Issue.record("the retired key verified after its grace period")
        } catch {
            #expect(SecureChannelError(certificate: error, role: "peer").code == .keyRetired)
            #expect("\(error)".contains("rotated away"))
        }
        // The new key is not affected; another host with the same key bytes is not either.
        #expect(throws: Never.self) { try s.a.trust.verify(s.rotation.certificate, now: now + 10_000) }
        #expect(registry.watch(hostID: "node-b", key: oldKey) { _ in } == nil) // already retired: nothing to watch
    }
}

/// Collects callbacks in a test.
final class Collected: @unchecked Sendable { // `stored` is read and written only under `lock`
    private let lock = NSLock()
    private var stored: [RetiredKeyRegistry.Retirement] = []
    func append(_ item: RetiredKeyRegistry.Retirement) { lock.withLock { stored.append(item) } }
    var items: [RetiredKeyRegistry.Retirement] { lock.withLock { stored } }
}
