public import MeshCrypto
public import MeshIdentity
import MeshWire

/// The responder side of the channel handshake (Noise XX, Protocol.md §3.4): a pure state
/// machine. Message 1 is checked in two steps so that the shell can apply its rate limit
/// between the cheap check (a hash) and the expensive one (Diffie-Hellman). The ephemeral key
/// pair is handed to `respond(to:ephemeral:)`, after those checks, so that a connection that
/// never sends a valid message 1 never costs a key generation (Protocol.md §3.3).
public struct HandshakeResponder: Sendable {
    private enum State: Sendable { case awaitingInit, awaitingFinish, done }

    /// Message 1 after its cheap checks passed.
    public struct ValidatedInit: Sendable {
        /// The domain whose key the initiator used.
        public let domain: DomainTrustAnchor
        fileprivate let domainHint: [UInt8]
        fileprivate let noiseMessage: [UInt8]
    }

    /// How message 3 ended.
    public enum Finish: Sendable {
        /// The initiator is authenticated.
        case established(ChannelSession)
        /// Message 3 decrypted, but the initiator is not acceptable: send the reason in an
        /// authenticated Close record under `session`, then close.
        case refused(ChannelSession, SecureChannelError)
    }

    private let credentials: ChannelCredentials
    private let policy: ChannelPolicy
    private var ephemeral: KeyAgreementKeyPair?
    private var symmetric: NoiseSymmetricState?
    private var state = State.awaitingInit
    private var aead: AEADAlgorithm?
    private var hello = Hostmesh_V1_ChannelHello()
    /// Filler bytes discarded so far (`discardFiller`).
    private var fillerBytes = 0

    /// A responder waiting for message 1; it holds no key pair until `respond(to:ephemeral:)`.
    public init(credentials: ChannelCredentials, policy: ChannelPolicy) {
        self.credentials = credentials
        self.policy = policy
    }

    /// Cheap checks on message 1: structure, a trusted domain hint, and mac1. No public-key
    /// operation happens here, so a flood of garbage costs one hash per frame.
    public func validateInit(_ frame: Frame) throws(SecureChannelError) -> ValidatedInit {
        guard state == .awaitingInit, frame.type == .handshakeInit else {
            throw SecureChannelError(.protocolViolation, "expected a handshake initiation, got \(frame.type)")
        }
        let body = Array(frame.body.readableBytesView)
        let hintLength = HandshakeWire.domainHintLength, macLength = HandshakeWire.macLength
        guard body.count >= hintLength + HandshakeWire.keyLength + macLength else {
            throw SecureChannelError(.protocolViolation, "handshake initiation too short (\(body.count) bytes)")
        }
        let hint = Array(body[0..<hintLength])
        guard let domain = credentials.trust.anchors.values.first(where: { HandshakeWire.domainHint($0.key) == hint }) else {
            if let (key, name) = credentials.trust.domainKeys.retired.first(where: { HandshakeWire.domainHint($0.key) == hint }) {
                throw SecureChannelError(.domainKeyRetired, "initiation names domain key \(key.fingerprint) of \(name), which its domain retired (Protocol.md §2.10): certify the host with the new domain key")
            }
            throw SecureChannelError(.unknownDomain, "initiation names domain key \(Hex.encode(hint)), which this host does not trust")
        }
        let covered = withUnsafeBytes(of: frame.lengthField.bigEndian, Array.init) + [FrameType.handshakeInit.rawValue] + Array(body.dropLast(macLength))
        let expected = HandshakeWire.mac1(domainKey: domain.key, covered: covered)
        guard Sodium.constantTimeEqual(expected, Array(body.suffix(macLength))) else {
            throw SecureChannelError(.badMAC, "initiation MAC does not verify for domain \(domain.name)")
        }
        return ValidatedInit(domain: domain, domainHint: hint, noiseMessage: Array(body[hintLength..<(body.count - macLength)]))
    }

    /// Processes a validated message 1 and returns message 2, framed.
    /// - Parameter ephemeral: a fresh key pair for this handshake only; the shell makes it only
    ///   once `validateInit` and its rate limit have passed.
    public mutating func respond(to initiation: ValidatedInit, ephemeral: KeyAgreementKeyPair) throws(SecureChannelError) -> [UInt8] {
        guard state == .awaitingInit else { throw SecureChannelError(.protocolViolation, "second handshake initiation") }
        state = .awaitingFinish
        var symmetric = NoiseSymmetricState(prologue: HandshakeWire.prologue(domainHint: initiation.domainHint))
        // -> e (payload in clear, bound into the hash)
        let msg = initiation.noiseMessage
        let remoteEphemeral: KeyAgreementPublicKey
        do { remoteEphemeral = try KeyAgreementPublicKey(bytes: Array(msg[0..<HandshakeWire.keyLength])) } catch {
            throw SecureChannelError(.protocolViolation, "\(error)")
        }
        symmetric.mixHash(remoteEphemeral.bytes)
        let payload = try symmetric.decryptAndHash(Array(msg[HandshakeWire.keyLength...]))
        guard let hello = try? Hostmesh_V1_ChannelHello(serializedBytes: payload) else { // refused: protocolViolation below
            throw SecureChannelError(.protocolViolation, "hello payload does not decode")
        }
        guard hello.protocolVersion == HandshakeWire.protocolVersion else {
            throw SecureChannelError(.unsupportedVersion, "initiator speaks version \(hello.protocolVersion); this host speaks \(HandshakeWire.protocolVersion)")
        }
        let offered = Set(hello.aeads)
        guard let aead = policy.aeads.first(where: { offered.contains($0.rawValue) }) else {
            throw SecureChannelError(.noCommonCipher, "initiator offered \(hello.aeads), this host accepts \(policy.aeads.map(\.rawValue))")
        }
        // <- e, ee, s, es
        symmetric.mixHash(ephemeral.publicKey.bytes)
        symmetric.mixKey(try dh(ephemeral, remoteEphemeral))
        let encryptedStatic = symmetric.encryptAndHash(credentials.identity.staticKey.publicKey.bytes)
        symmetric.mixKey(try dh(credentials.identity.staticKey, remoteEphemeral))
        let identity = symmetric.encryptAndHash(HandshakeWire.identityPayload(credentials, aead: aead, policy: policy))
        self.symmetric = symmetric
        self.ephemeral = ephemeral
        self.aead = aead
        self.hello = hello
        return HandshakeWire.frame(.handshakeResponse, ephemeral.publicKey.bytes + encryptedStatic + identity)
    }

    /// Discards a Filler frame (Protocol.md §3.2): allowed after message 1 was answered and before
    /// message 3, when this side accepts filler, up to `FrameDecoder.maxFillerBytes` on the wire
    /// in all (headers counted: an empty frame costs its 5 bytes).
    public mutating func discardFiller(_ frame: Frame) throws(SecureChannelError) {
        guard frame.type == .filler, state == .awaitingFinish, policy.acceptsFiller else {
            throw SecureChannelError(.protocolViolation, "unexpected \(frame.type) frame")
        }
        fillerBytes += 4 + Int(frame.lengthField)
        guard fillerBytes <= FrameDecoder.maxFillerBytes else {
            throw SecureChannelError(.protocolViolation, "more than \(FrameDecoder.maxFillerBytes) bytes of filler before message 3")
        }
    }

    /// Processes message 3 at unix time `now`.
    public mutating func receiveFinish(_ frame: Frame, now: Int64) throws(SecureChannelError) -> Finish {
        guard state == .awaitingFinish, var symmetric, let aead, let ephemeral else {
            throw SecureChannelError(.protocolViolation, "unexpected \(frame.type) frame")
        }
        state = .done
        if frame.type == .reject { throw HandshakeWire.peerError(Array(frame.body.readableBytesView)) }
        guard frame.type == .handshakeFinish else { throw SecureChannelError(.protocolViolation, "expected handshake finish, got \(frame.type)") }
        let msg = Array(frame.body.readableBytesView)
        let k = HandshakeWire.keyLength, t = HandshakeWire.tagLength
        guard msg.count >= k + t + t else { throw SecureChannelError(.protocolViolation, "handshake finish too short (\(msg.count) bytes)") }
        // -> s, se
        let remoteStatic = try symmetric.decryptAndHash(Array(msg[0..<(k + t)]))
        let remoteStaticKey: KeyAgreementPublicKey
        do { remoteStaticKey = try KeyAgreementPublicKey(bytes: remoteStatic) } catch { throw SecureChannelError(.protocolViolation, "\(error)") }
        symmetric.mixKey(try dh(ephemeral, remoteStaticKey))
        let payload = try symmetric.decryptAndHash(Array(msg[(k + t)...]))
        // From here on both sides hold the same keys, so a refusal can be sent authenticated.
        let split = symmetric.split()
        func session(_ peer: PeerIdentity, maxRecord: Int, acceptsPadding: Bool = false) -> ChannelSession {
            ChannelSession.derive(split: split, aead: aead, isInitiator: false, peer: peer, binding: symmetric.handshakeHash,
                                  peerMaxRecordPayload: maxRecord, peerAcceptsPadding: acceptsPadding)
        }
        do {
            let (certificate, identity) = try HandshakeWire.verifyIdentity(payload, staticKey: remoteStatic, trust: credentials.trust,
                                                                           requiredDomain: policy.requiredDomain, purpose: hello.purpose, now: now, role: "initiator")
            let peer = PeerIdentity(hostID: certificate.hostID, domain: certificate.domain, certificate: certificate, purpose: hello.purpose)
            var established = session(peer, maxRecord: Int(identity.maxRecord), acceptsPadding: identity.acceptsPadding)
            established.peerAcceptsFiller = identity.acceptsFiller
            return .established(established)
        } catch {
            // The peer is unauthenticated; the session exists only to carry the refusal.
            let anonymous = PeerIdentity(hostID: hello.initiatorHostID, domain: "?", certificate: credentials.certificate, purpose: hello.purpose)
            return .refused(session(anonymous, maxRecord: 1024), error)
        }
    }
}
