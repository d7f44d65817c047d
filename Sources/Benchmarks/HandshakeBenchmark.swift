import Foundation
import MeshCrypto
import MeshIdentity
import NIOCore
import SecureChannel

/// `hostmesh bench channel`, handshake part: how many handshake initiations one core refuses
/// when they are garbage (a bad mac1: the check costs a hash, Protocol.md §3.3) against how many
/// whole handshakes it completes as the responder (a key pair, three Diffie-Hellman operations
/// and a certificate verification). The ratio is what a flood of garbage costs compared with
/// the real thing: the README's "garbage costs a hash, not a Diffie-Hellman".
public enum HandshakeBenchmark {
    /// One run's figures, per core (one thread).
    public struct Result: Codable, Sendable {
        /// Garbage initiations (bad mac1) refused per second on one core.
        public var refusedPerSecond: Double
        /// Whole responder handshakes completed per second on one core.
        public var acceptedPerSecond: Double
        /// refused / accepted.
        public var ratio: Double
    }

    /// Runs each measurement for about `seconds` on the calling thread (blocking: call it off
    /// any event loop; the command line runs it on its own task).
    public static func run(seconds: Double = 1) throws -> Result {
        let domain = try DomainAuthority(name: "bench")
        let now = Int64(Date().timeIntervalSince1970)
        func credentials(_ id: String) throws -> ChannelCredentials {
            let identity = try HostIdentity(hostID: id)
            let cert = domain.certify(identity.publicKeys, serial: 1, notBefore: now - 60, notAfter: now + 3600)
            return ChannelCredentials(identity: identity, certificate: cert, trust: TrustStore(anchors: [domain.trustAnchor]))
        }
        let server = try credentials("responder"), client = try credentials("initiator")
        func frame(_ bytes: [UInt8]) throws -> Frame {
            var buffer = ByteBuffer(bytes: bytes)
            guard let frame = try FrameDecoder(maxRecordPayload: 1 << 20).next(from: &buffer) else {
                throw SecureChannelError(.internalError, "benchmark built an incomplete frame")
            }
            return frame
        }

        // Garbage: a well-formed initiation naming a trusted domain, its last MAC byte flipped.
        var initiator = try HandshakeInitiator(credentials: client, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
        var garbage = initiator.start()
        garbage[garbage.count - 1] ^= 1
        let garbageFrame = try frame(garbage)
        let responder = HandshakeResponder(credentials: server, policy: ChannelPolicy())
        let clock = ContinuousClock()
        var refused = 0
        let refuseStart = clock.now
        while (clock.now - refuseStart) < .seconds(seconds) {
            for _ in 0..<256 {
                do { _ = try responder.validateInit(garbageFrame) } catch { refused += 1 }
            }
        }
        let refusedPerSecond = Double(refused) / (clock.now - refuseStart).inSecondsDouble

        // Accepted: only the responder's calls are timed; the initiator's work between them is not.
        var accepted = 0
        var responderTime = Duration.zero
        let acceptStart = clock.now
        while (clock.now - acceptStart) < .seconds(seconds * 2) {
            var i = try HandshakeInitiator(credentials: client, policy: ChannelPolicy(), ephemeral: KeyAgreementKeyPair())
            let m1 = try frame(i.start())
            var r = HandshakeResponder(credentials: server, policy: ChannelPolicy())
            var t = clock.now
            let m2 = try r.respond(to: r.validateInit(m1), ephemeral: KeyAgreementKeyPair())
            responderTime += clock.now - t
            let (m3, _) = try i.receive(frame(m2), now: now)
            let finish = try frame(m3)
            t = clock.now
            let outcome = try r.receiveFinish(finish, now: now)
            responderTime += clock.now - t
            guard case .established = outcome else { throw SecureChannelError(.internalError, "benchmark handshake was refused") }
            accepted += 1
        }
        let acceptedPerSecond = Double(accepted) / responderTime.inSecondsDouble
        return Result(refusedPerSecond: refusedPerSecond, acceptedPerSecond: acceptedPerSecond, ratio: refusedPerSecond / acceptedPerSecond)
    }
}

extension Duration {
    fileprivate var inSecondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
