import Foundation
import MeshCrypto
import MeshIdentity
import MeshWire

/// Constants and helpers shared by both handshake roles (Protocol.md §3.3-3.4).
enum HandshakeWire {
    static let protocolVersion: UInt32 = 1
    static let prologueLabel = Array("hostmesh-channel-v1".utf8)
    static let mac1Label = Array("hostmesh-mac1-v1".utf8)
    static let domainHintLength = 8
    static let macLength = 16
    static let keyLength = 32
    static let tagLength = 16

    /// First 8 bytes of BLAKE2b-256(domain key): names the domain whose key keys the MAC.
    static func domainHint(_ key: SigningPublicKey) -> [UInt8] {
        Array(Blake2b.hash(key.bytes, outputLength: 32).prefix(domainHintLength))
    }

    static func prologue(domainHint: [UInt8]) -> [UInt8] { prologueLabel + domainHint }

    /// mac1 = BLAKE2b-128(key = BLAKE2b-256("hostmesh-mac1-v1" || domain key), covered bytes).
    static func mac1(domainKey: SigningPublicKey, covered: [UInt8]) -> [UInt8] {
        let macKey = Blake2b.hash(mac1Label + domainKey.bytes, outputLength: 32)
        return Blake2b.hash(covered, key: macKey, outputLength: macLength)
    }

    static func frame(_ type: FrameType, _ body: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(body.count + 1).bigEndian, Array.init) + [type.rawValue] + body
    }

    static func encode(_ message: some SwiftProtobuf.Message) -> [UInt8] {
        try! message.serializedBytes() // our messages have no required fields: encoding cannot fail
    }

    static func identityPayload(_ credentials: ChannelCredentials, aead: AEADAlgorithm?, policy: ChannelPolicy) -> [UInt8] {
        var m = Hostmesh_V1_ChannelIdentity()
        m.certificate = credentials.certificate.wire
        if let aead { m.aead = aead.rawValue }
        m.maxRecord = UInt32(policy.maxRecordPayload)
        m.acceptsPadding = policy.acceptsPadding
        m.acceptsFiller = policy.acceptsFiller
        return encode(m)
    }

    /// Decodes and verifies a peer's identity payload against the Noise static key it used.
    static func verifyIdentity(_ payload: [UInt8], staticKey: [UInt8], trust: TrustStore, requiredDomain: String?,
                               purpose: String, now: Int64, role: String) throws(SecureChannelError) -> (HostCertificate, Hostmesh_V1_ChannelIdentity) {
        guard let m = try? Hostmesh_V1_ChannelIdentity(serializedBytes: payload) else { // refused: protocolViolation below
            throw SecureChannelError(.protocolViolation, "\(role) identity payload does not decode")
        }
        let certificate: HostCertificate
        do { certificate = try HostCertificate(m.certificate) } catch {
            throw SecureChannelError(certificate: error, role: role)
        }
        do { try trust.verify(certificate, now: now, requiredDomain: requiredDomain, purpose: purpose) } catch {
            throw SecureChannelError(certificate: error, role: role)
        }
        guard [UInt8](certificate.body.staticKey) == staticKey else {
            throw SecureChannelError(.staticKeyMismatch, "\(role) \(certificate.hostID) used a static key its certificate does not certify")
        }
        guard m.maxRecord >= 1024 else {
            throw SecureChannelError(.protocolViolation, "\(role) advertised max record \(m.maxRecord) < 1024")
        }
        return (certificate, m)
    }

    static func rejectFrame(_ error: SecureChannelError) -> [UInt8] {
        var reason = Hostmesh_V1_CloseReason()
        reason.code = error.code.rawValue
        reason.message = error.detail
        return frame(.reject, encode(reason))
    }

    /// The error a peer reported in a Reject frame or Close record.
    static func peerError(_ body: [UInt8]) -> SecureChannelError {
        guard let reason = try? Hostmesh_V1_CloseReason(serializedBytes: body) else { // still an error: protocolViolation below
            return SecureChannelError(.protocolViolation, "peer sent an undecodable close reason", byPeer: true)
        }
        let code = CloseCode(rawValue: reason.code) ?? .internalError
        return SecureChannelError(code, reason.message.isEmpty ? "code \(reason.code)" : reason.message, byPeer: true)
    }
}
