public import MeshCrypto
public import MeshIdentity
import NIOConcurrencyHelpers

/// Who is on the other end, as proven by the handshake.
public struct PeerIdentity: Sendable, Equatable, CustomStringConvertible {
    /// The peer's certified host id.
    public let hostID: String
    /// The peer's certified domain.
    public let domain: String
    /// The certificate the peer presented (verified).
    public let certificate: HostCertificate
    /// What the initiator said the channel is for.
    public let purpose: String

    public var description: String {
        // Description for logs only: an unparsable key prints "?", nothing is decided on it.
        "\(hostID)@\(domain) (cert serial \(certificate.serial), key \((try? certificate.identityKey().fingerprint) ?? "?"))"
    }
}

/// The outcome of a completed handshake: the peer, the negotiated cipher and the traffic keys.
public struct ChannelSession: Sendable {
    /// The authenticated peer.
    public let peer: PeerIdentity
    /// Negotiated bulk AEAD.
    public let aead: AEADAlgorithm
    /// True on the side that opened the connection.
    public let isInitiator: Bool
    /// The final Noise handshake hash: unique per channel, usable as a channel binding.
    public let channelBinding: [UInt8]
    /// Largest record payload the peer accepts.
    public let peerMaxRecordPayload: Int
    /// The peer said it discards padding records (`accepts_padding`, Protocol.md §3.4): this side
    /// may send them (`SecureChannelPadding`).
    public var peerAcceptsPadding = false
    /// The peer said that, as a responder, it discards Filler frames after message 1
    /// (`accepts_filler`, Protocol.md §3.2, §3.4): a later channel to it may send them
    /// (`ChannelPolicy.handshakeFillerBytes`).
    public var peerAcceptsFiller = false
    let sendKey: SecretBytes
    let receiveKey: SecretBytes
    let exporterSecret: SecretBytes

    /// A key derived from this channel's secrets for another purpose (Protocol.md §3.7), e.g. the
    /// key of a migration stream. Both ends derive the same value for the same label.
    public func exportKey(label: String, length: Int = 32) -> SecretBytes {
        SecretBytes(Blake2b.hash(Array("hostmesh-export-v1 \(label)".utf8), key: exporterSecret, outputLength: length))
    }

    /// Derives the traffic keys from Noise's split outputs (Protocol.md §3.5).
    static func derive(split: (SecretBytes, SecretBytes, SecretBytes), aead: AEADAlgorithm, isInitiator: Bool,
                       peer: PeerIdentity, binding: [UInt8], peerMaxRecordPayload: Int, peerAcceptsPadding: Bool) -> ChannelSession {
        let label = Array("hostmesh-record-v1 \(aead.rawValue)".utf8)
        let i2r = SecretBytes(Blake2b.hash(label, key: split.0, outputLength: 32))
        let r2i = SecretBytes(Blake2b.hash(label, key: split.1, outputLength: 32))
        return ChannelSession(peer: peer, aead: aead, isInitiator: isInitiator, channelBinding: binding,
                              peerMaxRecordPayload: peerMaxRecordPayload, peerAcceptsPadding: peerAcceptsPadding,
                              sendKey: isInitiator ? i2r : r2i, receiveKey: isInitiator ? r2i : i2r, exporterSecret: split.2)
    }
}

/// What a host needs to take part in handshakes.
///
/// The identity and its certificate sit in one slot shared by every copy: a renewed certificate
/// (`replaceCertificate`) or a rotated key (`replace(identity:certificate:)`) is presented by the
/// next handshake of every part of the agent that holds a copy, while channels already open keep
/// the session they authenticated. A handshake works on a `snapshot()`, so it never mixes the
/// key of one moment with the certificate of another.
public struct ChannelCredentials: Sendable {
    /// Domains whose certificates are accepted.
    public let trust: TrustStore
    private let slot: CredentialSlot

    /// This host's current keys.
    public var identity: HostIdentity { slot.current.identity }
    /// This host's current certificate (it certifies `identity`).
    public var certificate: HostCertificate { slot.current.certificate }

    /// Bundles credentials.
    public init(identity: HostIdentity, certificate: HostCertificate, trust: TrustStore) {
        self.trust = trust
        self.slot = CredentialSlot(identity: identity, certificate: certificate)
    }

    /// Credentials frozen at the current identity and certificate (no longer following changes).
    public func snapshot() -> ChannelCredentials {
        let current = slot.current
        return ChannelCredentials(identity: current.identity, certificate: current.certificate, trust: trust)
    }

    /// Presents `certificate` from the next handshake on, in every copy of these credentials.
    /// Refused (returns false, nothing changes) unless it certifies the current identity: the
    /// same host id and the same identity and static keys.
    @discardableResult
    public func replaceCertificate(_ certificate: HostCertificate) -> Bool {
        slot.update { current in
            guard Self.certifies(certificate, current.identity) else { return false }
            current.certificate = certificate
            return true
        }
    }

    /// Moves to a new identity and its certificate at once (a key rotation), in every copy.
    /// Refused (returns false) unless the certificate certifies that identity, for the same host.
    /// With the rotation's record, the channels watching these credentials (`watchRotations`)
    /// are told, so they re-authenticate in place (Protocol.md §3.9).
    @discardableResult
    public func replace(identity: HostIdentity, certificate: HostCertificate, record: RotationRecord? = nil) -> Bool {
        slot.replace(identity: identity, certificate: certificate, record: record)
    }

    /// Calls `onRotation` (outside any lock, on the rotating task) for every key rotation made
    /// with a record from now on, until `unwatchRotations`. The last rotation is also kept
    /// (`lastRotation`) for a channel established while it happened.
    public func watchRotations(_ onRotation: @escaping @Sendable (KeyRotationNotice) -> Void) -> RotationWatchToken {
        slot.watch(onRotation)
    }

    /// Stops a `watchRotations`. Unknown tokens are ignored.
    public func unwatchRotations(_ token: RotationWatchToken) { slot.unwatch(token) }

    /// The most recent rotation made with a record, if any.
    public var lastRotation: KeyRotationNotice? { slot.lastRotation }

    /// True when `certificate` certifies `identity`: its host id and both its keys.
    public static func certifies(_ certificate: HostCertificate, _ identity: HostIdentity) -> Bool {
        certificate.hostID == identity.hostID && [UInt8](certificate.body.identityKey) == identity.signingKey.publicKey.bytes
            && [UInt8](certificate.body.staticKey) == identity.staticKey.publicKey.bytes
    }
}

/// A channel watching its host's rotations (`ChannelCredentials.watchRotations`).
public struct RotationWatchToken: Hashable, Sendable { let id: UInt64 }

/// The current identity and certificate of one host, shared by every copy of its
/// `ChannelCredentials`; they change together. It also holds the channels that want to hear of
/// a rotation, and the last rotation.
final class CredentialSlot: Sendable {
    private let box: NIOLockedValueBox<(identity: HostIdentity, certificate: HostCertificate)>
    private struct Watchers {
        var byID: [UInt64: @Sendable (KeyRotationNotice) -> Void] = [:]
        var nextID: UInt64 = 1
        var last: KeyRotationNotice?
    }
    private let watchers = NIOLockedValueBox(Watchers())
    init(identity: HostIdentity, certificate: HostCertificate) { box = NIOLockedValueBox((identity, certificate)) }
    var current: (identity: HostIdentity, certificate: HostCertificate) { box.withLockedValue { $0 } }
    func update<T>(_ body: (inout (identity: HostIdentity, certificate: HostCertificate)) -> T) -> T { box.withLockedValue { body(&$0) } }

    func replace(identity: HostIdentity, certificate: HostCertificate, record: RotationRecord?) -> Bool {
        let replaced = update { current in
            guard identity.hostID == current.identity.hostID, ChannelCredentials.certifies(certificate, identity) else { return false }
            current = (identity, certificate)
            return true
        }
        guard replaced, let record else { return replaced }
        let notice = KeyRotationNotice(identity: identity, certificate: certificate, record: record)
        let callbacks = watchers.withLockedValue { watchers in
            watchers.last = notice
            return Array(watchers.byID.values)
        }
        for callback in callbacks { callback(notice) }
        return true
    }

    func watch(_ callback: @escaping @Sendable (KeyRotationNotice) -> Void) -> RotationWatchToken {
        watchers.withLockedValue { watchers in
            let id = watchers.nextID
            watchers.nextID += 1
            watchers.byID[id] = callback
            return RotationWatchToken(id: id)
        }
    }

    func unwatch(_ token: RotationWatchToken) { _ = watchers.withLockedValue { $0.byID.removeValue(forKey: token.id) } }
    var lastRotation: KeyRotationNotice? { watchers.withLockedValue { $0.last } }
}

/// Per-channel choices.
public struct ChannelPolicy: Sendable {
    /// Only peers of this domain are accepted; nil accepts any trusted domain.
    public var requiredDomain: String?
    /// Initiator only: the host id we mean to reach; another host is refused.
    public var expectedPeer: String?
    /// Bulk AEADs in order of preference.
    public var aeads: [AEADAlgorithm]
    /// Largest record payload this side accepts.
    public var maxRecordPayload: Int
    /// Initiator only: what the channel is for.
    public var purpose: String
    /// Initiator only: the trust anchor of the domain being dialled (its key keys the
    /// initiation MAC). Nil means this host's own domain.
    public var targetDomain: DomainTrustAnchor?
    /// Whether this side says it discards padding records (`accepts_padding`, Protocol.md §3.4)
    /// and does; a side that does not closes a channel whose peer sends one.
    public var acceptsPadding = true
    /// Whether this side says it discards, as a responder, Filler frames between message 1 and
    /// message 3 (`accepts_filler`, Protocol.md §3.2) and does; a responder that does not closes a
    /// channel whose initiator sends one, as an unknown frame.
    public var acceptsFiller = true
    /// Initiator only: bytes of Filler frames to send right after message 1 (0: none), so that the
    /// TCP connection's first round trip carries a full initial window and its congestion window
    /// has doubled once by the time the keys are ready (Protocol.md §3.2, §6.3). Only for a
    /// responder known to accept them (`ChannelSession.peerAcceptsFiller` of an earlier channel
    /// to that host): another closes the channel. At most `FrameDecoder.maxFillerBytes`.
    public var handshakeFillerBytes = 0

    /// Defaults: any trusted domain, AES-256-GCM where the CPU has it, 256 KiB records.
    public init(requiredDomain: String? = nil, expectedPeer: String? = nil, aeads: [AEADAlgorithm] = AEADAlgorithm.bulkPreference,
                maxRecordPayload: Int = 256 * 1024, purpose: String = "control", targetDomain: DomainTrustAnchor? = nil) {
        self.requiredDomain = requiredDomain
        self.expectedPeer = expectedPeer
        self.aeads = aeads
        self.maxRecordPayload = maxRecordPayload
        self.purpose = purpose
        self.targetDomain = targetDomain
    }
}

extension SecureChannelError {
    /// Maps a certificate verification failure to its close code.
    init(certificate error: IdentityError, role: String) {
        let code: CloseCode
        switch error {
        case .unknownIssuer, .issuerRefused: code = .unknownIssuer
        case .badSignature: code = .badCertificateSignature
        case .wrongDomain: code = .wrongDomain
        case .expired: code = .certificateExpired
        case .notYetValid: code = .certificateNotYetValid
        case .revoked: code = .revoked
        case .notFederated: code = .notFederated
        case .keyRetired: code = .keyRetired
        case .domainKeyRetired: code = .domainKeyRetired
        default: code = .certificateMalformed
        }
        self.init(code, "\(role) certificate rejected: \(error)")
    }
}
