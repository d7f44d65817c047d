import CSodium

/// An X25519 public key (32 bytes).
public struct KeyAgreementPublicKey: Hashable, Sendable {
    /// Length of an X25519 public key.
    public static let length = Int(crypto_scalarmult_curve25519_BYTES)
    /// The raw key.
    public let bytes: [UInt8]

    /// Wraps a raw key; throws on the wrong length.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.length else {
            throw CryptoError.invalidLength(what: "X25519 public key", expected: Self.length, actual: bytes.count)
        }
        self.bytes = bytes
    }
}

/// An X25519 key pair: ephemeral (per handshake) or static (derived from the host key).
public struct KeyAgreementKeyPair: Sendable {
    /// The public half.
    public let publicKey: KeyAgreementPublicKey
    private let privateKey: SecretBytes

    /// A fresh random key pair.
    public init() {
        try! self.init(privateKey: SecretBytes(randomCount: KeyAgreementPublicKey.length)) // right length by construction
    }

    /// The key pair for a private scalar.
    public init(privateKey: SecretBytes) throws {
        Sodium.ensureInitialized()
        guard privateKey.count == KeyAgreementPublicKey.length else {
            throw CryptoError.invalidLength(what: "X25519 private key", expected: KeyAgreementPublicKey.length, actual: privateKey.count)
        }
        var pk = [UInt8](repeating: 0, count: KeyAgreementPublicKey.length)
        privateKey.withUnsafeBytes { sk in
            _ = pk.withUnsafeMutableBufferPointer { crypto_scalarmult_curve25519_base($0.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        }
        self.privateKey = privateKey
        self.publicKey = try KeyAgreementPublicKey(bytes: pk)
    }

    /// X25519(private, peer): the raw shared secret. Throws for low-order peer keys (all-zero output).
    public func sharedSecret(with peer: KeyAgreementPublicKey) throws -> SecretBytes {
        try SecretBytes(count: KeyAgreementPublicKey.length) { out in
            let rc = privateKey.withUnsafeBytes { sk in
                peer.bytes.withUnsafeBufferPointer { pk in
                    crypto_scalarmult_curve25519(out.baseAddress!.assumingMemoryBound(to: UInt8.self), sk.baseAddress!.assumingMemoryBound(to: UInt8.self), pk.baseAddress!)
                }
            }
            guard rc == 0 else { throw CryptoError.weakPublicKey }
        }
    }
}
