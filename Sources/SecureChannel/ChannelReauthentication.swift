public import MeshCrypto
public import MeshIdentity
import MeshWire
import Foundation

/// In-place re-authentication of one open channel (Protocol.md §3.9), as a pure state: what this
/// side says when its host rotates its key, and the checks of what the peer says when its host
/// does. No I/O and no clock: the shell passes `now` and seals or opens the records.
public struct ChannelReauthentication: Sendable {
    /// The format this software writes and reads.
    public static let currentFormat: UInt32 = 1
    /// Domain-separation prefix of the signed message.
    public static let signatureContext = Array("hostmesh-reauth-v1".utf8)

    /// A re-authentication the peer made that passed every check.
    public struct Accepted: Sendable {
        /// The certificate the peer held before.
        public let previous: HostCertificate
        /// The certificate it holds now.
        public let current: HostCertificate
        /// The record linking the two keys.
        public let record: RotationRecord
        /// The peer's sequence number of it.
        public let sequence: UInt64
    }

    /// The channel's handshake hash (§3.5): every message is bound to it.
    public let binding: [UInt8]
    /// True on the side that opened the channel.
    public let isInitiator: Bool
    /// The channel's purpose (a federated peer's certificate verifies only for some, §2.9).
    public let purpose: String
    /// The certificate the peer is authenticated by now: the handshake's, then each accepted
    /// re-authentication's.
    public private(set) var peerCertificate: HostCertificate
    /// The highest sequence number accepted from the peer (0: none yet).
    public private(set) var peerSequence: UInt64 = 0
    /// The identity key this side is authenticated by on this channel now.
    public private(set) var localKey: SigningPublicKey
    /// The sequence number of this side's last re-authentication (0: none yet).
    public private(set) var localSequence: UInt64 = 0

    /// The state of a channel just established with `session`, this side authenticated by `localKey`.
    public init(session: ChannelSession, localKey: SigningPublicKey) {
        self.init(binding: session.channelBinding, isInitiator: session.isInitiator, purpose: session.peer.purpose,
                  peerCertificate: session.peer.certificate, localKey: localKey)
    }

    /// The state of a channel from its parts (tests and test vectors).
    public init(binding: [UInt8], isInitiator: Bool, purpose: String, peerCertificate: HostCertificate, localKey: SigningPublicKey) {
        self.binding = binding
        self.isInitiator = isInitiator
        self.purpose = purpose
        self.peerCertificate = peerCertificate
        self.localKey = localKey
    }

    /// The content of the re-authentication record announcing `rotation` on this channel, or nil
    /// when the rotation does not start from the key this side is authenticated by here (the
    /// channel missed a rotation in between: it keeps its key until the grace period ends).
    public mutating func announce(_ rotation: KeyRotationNotice) -> [UInt8]? {
        guard [UInt8](rotation.record.body.oldIdentityKey) == localKey.bytes,
              [UInt8](rotation.record.body.newIdentityKey) == rotation.identity.signingKey.publicKey.bytes else { return nil }
        localSequence += 1
        localKey = rotation.identity.signingKey.publicKey
        return Self.message(binding: binding, fromInitiator: isInitiator, sequence: localSequence, rotation: rotation)
    }

    /// The encoded `ChannelReauth` for the given fields, signed by the rotation's new key.
    public static func message(binding: [UInt8], fromInitiator: Bool, sequence: UInt64, rotation: KeyRotationNotice,
                               format: UInt32 = currentFormat) -> [UInt8] {
        var body = Hostmesh_V1_ChannelReauthBody()
        body.format = format
        body.channelBinding = Data(binding)
        body.fromInitiator = fromInitiator
        body.sequence = sequence
        body.certificate = rotation.certificate.wire
        body.rotation = Data(rotation.record.serialized)
        let bodyBytes: [UInt8] = try! body.serializedBytes() // plain fields always encode
        var wire = Hostmesh_V1_ChannelReauth()
        wire.body = Data(bodyBytes)
        wire.signature = Data(rotation.identity.signingKey.sign(signatureContext + bodyBytes))
        return try! wire.serializedBytes() // bytes fields always encode
    }

    /// Checks a re-authentication the peer sent on this channel at unix time `now` against
    /// `trust`, in the order of Protocol.md §3.9, and on success moves the peer to its new
    /// certificate. Every refusal is *re-authentication refused* (code 30) naming the check,
    /// except a certificate refused as revoked (21) or retired (31). Nothing changes on a refusal.
    public mutating func accept(_ content: [UInt8], trust: TrustStore, now: Int64) throws(SecureChannelError) -> Accepted {
        func refuse(_ why: String) -> SecureChannelError {
            SecureChannelError(.reauthenticationRefused, "re-authentication of \(peerCertificate.hostID) refused: \(why)")
        }
        // 1. Structure.
        guard let wire = try? Hostmesh_V1_ChannelReauth(serializedBytes: content), // refused below, naming it
              let body = try? Hostmesh_V1_ChannelReauthBody(serializedBytes: wire.body) else { // refused below, naming it
            throw refuse("the message does not decode")
        }
        guard body.format == Self.currentFormat else { throw refuse("format \(body.format) is not supported (this hostmesh reads 1)") }
        guard wire.signature.count == 64 else { throw refuse("the signature is \(wire.signature.count) bytes, not 64") }
        // 2. Bound to this channel, from the peer's side, not seen before.
        guard [UInt8](body.channelBinding) == binding else {
            throw refuse("it is bound to another channel's handshake hash (replayed from another channel, or forged)")
        }
        guard body.fromInitiator != isInitiator else {
            throw refuse("it claims this side's role on the channel (reflected)")
        }
        guard body.sequence > peerSequence else {
            throw refuse("sequence \(body.sequence) is not above \(peerSequence), the last accepted (replayed)")
        }
        // 3. The certificate: the same host, the same domain, verified as at a handshake.
        let certificate: HostCertificate
        do { certificate = try HostCertificate(body.certificate) } catch { throw refuse("its certificate: \(error)") }
        guard certificate.hostID == peerCertificate.hostID else {
            throw refuse("its certificate is for host \(certificate.hostID), but the channel authenticated \(peerCertificate.hostID)")
        }
        do { try trust.verify(certificate, now: now, requiredDomain: peerCertificate.domain, purpose: purpose) } catch {
            let mapped = SecureChannelError(certificate: error, role: "re-authenticating")
            if mapped.code == .revoked || mapped.code == .keyRetired { throw mapped }
            throw refuse("its certificate is refused: \(error)")
        }
        // 4. The rotation record links the key the channel holds to the certificate's keys.
        let record: RotationRecord
        do {
            record = try RotationRecord(serialized: [UInt8](body.rotation))
            try record.verify(against: peerCertificate, now: now, clockSkewSeconds: trust.clockSkewSeconds)
        } catch {
            throw refuse("\(error)")
        }
        guard record.body.newIdentityKey == certificate.body.identityKey, record.body.newStaticKey == certificate.body.staticKey else {
            throw refuse("the rotation record moves to other keys than its certificate certifies")
        }
        // 5. Signed by the new key.
        guard let newKey = try? certificate.identityKey(), // verified above: 32 bytes
              newKey.isValidSignature([UInt8](wire.signature), for: Self.signatureContext + [UInt8](wire.body)) else {
            throw refuse("the signature does not verify with the new key its certificate certifies")
        }
        let accepted = Accepted(previous: peerCertificate, current: certificate, record: record, sequence: body.sequence)
        peerCertificate = certificate
        peerSequence = body.sequence
        return accepted
    }
}
