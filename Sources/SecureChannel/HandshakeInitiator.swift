public import MeshCrypto
import MeshIdentity
import MeshWire

/// The initiator side of the channel handshake (Noise XX, Protocol.md §3.4): a pure state
/// machine. The shell feeds it frames and the current unix time, and writes what it returns.
public struct HandshakeInitiator: Sendable {
    private enum State: Sendable { case idle, awaitingResponse, done }

    private let credentials: ChannelCredentials
    private let policy: ChannelPolicy
    private let ephemeral: KeyAgreementKeyPair
    private var symmetric: NoiseSymmetricState
    private var state = State.idle
    private let targetDomainKey: SigningPublicKey
    private let domainHint: [UInt8]

    /// - Parameter ephemeral: a fresh key pair for this handshake only (injected so that tests
    ///   are deterministic; the shell passes `KeyAgreementKeyPair()`).
    public init(credentials: ChannelCredentials, policy: ChannelPolicy, ephemeral: KeyAgreementKeyPair) throws(SecureChannelError) {
        self.credentials = credentials
        self.policy = policy
        self.ephemeral = ephemeral
        let key: SigningPublicKey
        if let target = policy.targetDomain {
            key = target.key
        } else {
            do { key = try credentials.certificate.domainKey() } catch {
                throw SecureChannelError(.internalError, "own certificate: \(error)")
            }
        }
        guard !policy.aeads.isEmpty else { throw SecureChannelError(.noCommonCipher, "no AEAD configured") }
        targetDomainKey = key
        domainHint = HandshakeWire.domainHint(key)
        symmetric = NoiseSymmetricState(prologue: HandshakeWire.prologue(domainHint: domainHint))
    }

    /// Message 1: `-> e` with the hello payload, framed, with the domain hint and mac1; then the
    /// policy's Filler frames, if any (Protocol.md §3.2).
    public mutating func start() -> [UInt8] {
        precondition(state == .idle, "start() called twice") // programmer error
        state = .awaitingResponse
        var hello = Hostmesh_V1_ChannelHello()
        hello.protocolVersion = HandshakeWire.protocolVersion
        hello.aeads = policy.aeads.map(\.rawValue)
        hello.purpose = policy.purpose
        hello.initiatorHostID = credentials.identity.hostID
        symmetric.mixHash(ephemeral.publicKey.bytes)
        let payload = symmetric.encryptAndHash(HandshakeWire.encode(hello))
        let noise = ephemeral.publicKey.bytes + payload
        let bodyLength = HandshakeWire.domainHintLength + noise.count + HandshakeWire.macLength
        let covered = withUnsafeBytes(of: UInt32(bodyLength + 1).bigEndian, Array.init) + [FrameType.handshakeInit.rawValue] + domainHint + noise
        return covered + HandshakeWire.mac1(domainKey: targetDomainKey, covered: covered) + Self.filler(policy.handshakeFillerBytes)
    }

    /// Filler frames of `bytes` on the wire, headers included (zero bodies, none empty, each frame
    /// at most a handshake frame's size), at most `FrameDecoder.maxFillerBytes` (Protocol.md §3.2).
    static func filler(_ bytes: Int) -> [UInt8] {
        var left = min(max(0, bytes), FrameDecoder.maxFillerBytes)
        var frames: [UInt8] = []
        while left > 5 {
            let body = min(left - 5, FrameDecoder.maxHandshakeFrameLength - 1)
            frames += HandshakeWire.frame(.filler, [UInt8](repeating: 0, count: body))
            left -= 5 + body
        }
        return frames
    }

    /// Processes message 2 (or the responder's rejection). On success returns message 3, framed,
    /// and the established session; the initiator may send records right after message 3.
    public mutating func receive(_ frame: Frame, now: Int64) throws(SecureChannelError) -> (finish: [UInt8], session: ChannelSession) {
        guard state == .awaitingResponse else { throw SecureChannelError(.protocolViolation, "unexpected \(frame.type) frame") }
        state = .done
        if frame.type == .reject { throw HandshakeWire.peerError(Array(frame.body.readableBytesView)) }
        guard frame.type == .handshakeResponse else {
            throw SecureChannelError(.protocolViolation, "expected a handshake response, got \(frame.type)")
        }
        let msg = Array(frame.body.readableBytesView)
        let k = HandshakeWire.keyLength, t = HandshakeWire.tagLength
        guard msg.count >= k + k + t + t else { throw SecureChannelError(.protocolViolation, "handshake response too short (\(msg.count) bytes)") }
        // <- e, ee, s, es
        let remoteEphemeral: KeyAgreementPublicKey
        do { remoteEphemeral = try KeyAgreementPublicKey(bytes: Array(msg[0..<k])) } catch { throw SecureChannelError(.protocolViolation, "\(error)") }
        symmetric.mixHash(remoteEphemeral.bytes)
        symmetric.mixKey(try dh(ephemeral, remoteEphemeral))
        let remoteStatic = try symmetric.decryptAndHash(Array(msg[k..<(k + k + t)]))
        let remoteStaticKey: KeyAgreementPublicKey
        do { remoteStaticKey = try KeyAgreementPublicKey(bytes: remoteStatic) } catch { throw SecureChannelError(.protocolViolation, "\(error)") }
        symmetric.mixKey(try dh(ephemeral, remoteStaticKey))
        let payload = try symmetric.decryptAndHash(Array(msg[(k + k + t)...]))
        let (certificate, identity) = try HandshakeWire.verifyIdentity(payload, staticKey: remoteStatic, trust: credentials.trust,
                                                                       requiredDomain: policy.requiredDomain, purpose: policy.purpose, now: now, role: "responder")
        if let expected = policy.expectedPeer, certificate.hostID != expected {
            throw SecureChannelError(.unexpectedPeer, "dialled \(expected) but the responder proved to be \(certificate.hostID)")
        }
        guard let aead = AEADAlgorithm(rawValue: identity.aead), policy.aeads.contains(aead) else {
            throw SecureChannelError(.noCommonCipher, "responder chose \"\(identity.aead)\", which was not offered")
        }
        // -> s, se
        let encryptedStatic = symmetric.encryptAndHash(credentials.identity.staticKey.publicKey.bytes)
        symmetric.mixKey(try dh(credentials.identity.staticKey, remoteEphemeral))
        let finishPayload = symmetric.encryptAndHash(HandshakeWire.identityPayload(credentials, aead: nil, policy: policy))
        let finish = HandshakeWire.frame(.handshakeFinish, encryptedStatic + finishPayload)
        let peer = PeerIdentity(hostID: certificate.hostID, domain: certificate.domain, certificate: certificate, purpose: policy.purpose)
        var session = ChannelSession.derive(split: symmetric.split(), aead: aead, isInitiator: true, peer: peer,
                                            binding: symmetric.handshakeHash, peerMaxRecordPayload: Int(identity.maxRecord),
                                            peerAcceptsPadding: identity.acceptsPadding)
        session.peerAcceptsFiller = identity.acceptsFiller
        return (finish, session)
    }
}

/// X25519 with the weak-key failure mapped to a protocol error.
func dh(_ local: KeyAgreementKeyPair, _ remote: KeyAgreementPublicKey) throws(SecureChannelError) -> SecretBytes {
    do { return try local.sharedSecret(with: remote) } catch {
        throw SecureChannelError(.protocolViolation, "peer sent a low-order public key")
    }
}
