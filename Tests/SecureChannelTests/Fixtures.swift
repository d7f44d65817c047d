import Foundation
import Logging
import MeshCrypto
import MeshIdentity
import NIOCore
@testable import SecureChannel

/// Domains, hosts and certificates for tests. Certificates are valid for [1000, 100000) in the
/// pure tests (which pass `now` explicitly) and around the real clock for socket tests.
struct Fixtures {
    let lab = try! DomainAuthority(name: "lab")
    let prod = try! DomainAuthority(name: "prod")
    let now = Int64(Date().timeIntervalSince1970)

    func host(_ id: String, domain: DomainAuthority? = nil, notBefore: Int64? = nil, notAfter: Int64? = nil,
              trusting: [DomainAuthority]? = nil) -> ChannelCredentials {
        let identity = try! HostIdentity(hostID: id)
        let issuer = domain ?? lab
        let cert = issuer.certify(identity.publicKeys, serial: 1, notBefore: notBefore ?? now - 3600, notAfter: notAfter ?? now + 3600)
        let anchors = (trusting ?? [lab]).map(\.trustAnchor)
        return ChannelCredentials(identity: identity, certificate: cert, trust: TrustStore(anchors: anchors, clockSkewSeconds: 0))
    }

    static func frame(_ bytes: [UInt8]) throws -> Frame {
        var buffer = ByteBuffer(bytes: bytes)
        guard let frame = try FrameDecoder(maxRecordPayload: 1 << 20).next(from: &buffer) else {
            throw SecureChannelError(.protocolViolation, "incomplete frame in test")
        }
        return frame
    }

    /// Runs a whole handshake between two pure cores; returns both sessions or the first error.
    static func handshake(initiator: ChannelCredentials, responder: ChannelCredentials,
                          initiatorPolicy: ChannelPolicy = ChannelPolicy(), responderPolicy: ChannelPolicy = ChannelPolicy(),
                          now: Int64) throws -> (ChannelSession, ChannelSession) {
        var i = try HandshakeInitiator(credentials: initiator, policy: initiatorPolicy, ephemeral: KeyAgreementKeyPair())
        var r = HandshakeResponder(credentials: responder, policy: responderPolicy)
        let m1 = try frame(i.start())
        let m2 = try frame(r.respond(to: r.validateInit(m1), ephemeral: KeyAgreementKeyPair()))
        let (m3, initiatorSession) = try i.receive(m2, now: now)
        switch try r.receiveFinish(frame(m3), now: now) {
        case .established(let responderSession): return (initiatorSession, responderSession)
        case .refused(_, let error): throw error
        }
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}()
