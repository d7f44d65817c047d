/// Failures of cryptographic operations, phrased for the person who has to act on them.
public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A key, nonce or signature had the wrong length.
    case invalidLength(what: String, expected: Int, actual: Int)
    /// AEAD decryption failed: the data was modified, truncated, or sealed under another key.
    case authenticationFailed
    /// The peer's public key is a low-order point; the Diffie-Hellman result would be all zero.
    case weakPublicKey
    /// The algorithm is not usable on this machine.
    case algorithmUnavailable(String)

    public var description: String {
        switch self {
        case let .invalidLength(what, expected, actual):
            return "\(what) must be \(expected) bytes, got \(actual)"
        case .authenticationFailed:
            return "authentication tag mismatch: the data was altered, truncated, replayed under another counter, or sealed with a different key"
        case .weakPublicKey:
            return "peer public key is a low-order curve point (rejected to keep forward secrecy)"
        case let .algorithmUnavailable(name):
            return "\(name) is not available on this CPU; use xchacha20-poly1305 instead"
        }
    }
}
