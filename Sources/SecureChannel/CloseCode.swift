/// Why a channel ended. The numeric values are on the wire (`CloseReason.code`, Protocol.md §3.8).
public enum CloseCode: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// Orderly close by the application.
    case normal = 0
    /// A frame or message broke the protocol (wrong type for the state, bad length, bad encoding).
    case protocolViolation = 1
    /// The peer speaks a protocol version this host does not.
    case unsupportedVersion = 2
    /// No bulk AEAD that both sides accept.
    case noCommonCipher = 3
    /// The handshake-initiation MAC did not verify (sender does not know the domain key it names).
    case badMAC = 4
    /// Too many handshakes from this source; retry later.
    case rateLimited = 5
    /// The initiation names a domain this host does not trust.
    case unknownDomain = 6
    /// The peer's certificate signature does not verify.
    case badCertificateSignature = 7
    /// The peer's certificate has expired.
    case certificateExpired = 8
    /// The peer's certificate is not valid yet.
    case certificateNotYetValid = 9
    /// The peer's certificate is for another domain than required.
    case wrongDomain = 10
    /// The peer's certificate was issued by an untrusted key.
    case unknownIssuer = 11
    /// The peer's certificate does not decode, or has an unsupported version or critical extension.
    case certificateMalformed = 12
    /// The Noise static key the peer used is not the one its certificate certifies.
    case staticKeyMismatch = 13
    /// The peer authenticated as a different host than the one dialled.
    case unexpectedPeer = 14
    /// A handshake message failed to decrypt (tampered, or the peer is confused).
    case handshakeDecryptFailed = 15
    /// A record failed authentication (tampered, or sealed with another key).
    case recordAuthenticationFailed = 16
    /// A record arrived with a counter other than the next expected one (replayed, reordered or dropped).
    case recordOutOfOrder = 17
    /// The connection ended without an authenticated close (cut or truncated).
    case truncated = 18
    /// The handshake did not finish in time.
    case handshakeTimeout = 19
    /// A frame was larger than allowed.
    case frameTooLarge = 20
    /// The peer's certificate has been revoked by its domain.
    case revoked = 21
    /// The host is shutting down.
    case shuttingDown = 22
    /// An internal error on the sender's side.
    case internalError = 23
    /// The peer is a host of another domain that no grant in force lets in, or it asked for a
    /// purpose cross-domain channels may not have; or the grant of an open cross-domain channel
    /// was revoked or expired since (Protocol.md §2.9).
    case notFederated = 24
    /// The peer's re-authentication of an open channel after a key rotation was refused: the
    /// detail names the check that failed (Protocol.md §3.9).
    case reauthenticationRefused = 30
    /// The peer presented a host key it rotated away from, after the grace period (Protocol.md §3.9).
    case keyRetired = 31
    /// The peer's certificate was signed by a domain key its domain retired (Protocol.md §2.10).
    case domainKeyRetired = 32

    public var description: String {
        switch self {
        case .normal: return "normal close"
        case .protocolViolation: return "protocol violation"
        case .unsupportedVersion: return "unsupported protocol version"
        case .noCommonCipher: return "no common cipher"
        case .badMAC: return "bad handshake MAC"
        case .rateLimited: return "rate limited"
        case .unknownDomain: return "unknown domain"
        case .badCertificateSignature: return "bad certificate signature"
        case .certificateExpired: return "certificate expired"
        case .certificateNotYetValid: return "certificate not yet valid"
        case .wrongDomain: return "wrong domain"
        case .unknownIssuer: return "unknown certificate issuer"
        case .certificateMalformed: return "certificate malformed"
        case .staticKeyMismatch: return "static key does not match certificate"
        case .unexpectedPeer: return "unexpected peer"
        case .handshakeDecryptFailed: return "handshake decryption failed"
        case .recordAuthenticationFailed: return "record authentication failed"
        case .recordOutOfOrder: return "record out of order (replayed, reordered or dropped)"
        case .truncated: return "stream truncated (no authenticated close)"
        case .handshakeTimeout: return "handshake timeout"
        case .frameTooLarge: return "frame too large"
        case .revoked: return "certificate revoked"
        case .shuttingDown: return "shutting down"
        case .internalError: return "internal error"
        case .notFederated: return "not federated"
        case .reauthenticationRefused: return "re-authentication refused"
        case .keyRetired: return "key retired"
        case .domainKeyRetired: return "domain key retired"
        }
    }
}

/// A channel failure: the code that goes on the wire and a detail for the log.
public struct SecureChannelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Machine-readable reason.
    public let code: CloseCode
    /// Human detail: what exactly was wrong and, where possible, what to do about it.
    public let detail: String
    /// True when the peer reported the failure (we received its close or reject).
    public let byPeer: Bool

    /// A failure with a reason.
    public init(_ code: CloseCode, _ detail: String, byPeer: Bool = false) {
        self.code = code
        self.detail = detail
        self.byPeer = byPeer
    }

    public var description: String {
        (byPeer ? "peer closed the channel: " : "") + "\(code) (\(code.rawValue)): \(detail)"
    }
}
