import CSodium

/// An Ed25519 public key (32 bytes): the identity of a host or a domain.
public struct SigningPublicKey: Hashable, Sendable {
    /// The raw 32-byte key.
    public let bytes: [UInt8]

    /// Wraps a raw key; throws on the wrong length.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == Int(crypto_sign_PUBLICKEYBYTES) else {
            throw CryptoError.invalidLength(what: "Ed25519 public key", expected: Int(crypto_sign_PUBLICKEYBYTES), actual: bytes.count)
        }
        self.bytes = bytes
    }

    /// True when `signature` is a valid Ed25519 signature of `message` by this key.
    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        Sodium.ensureInitialized()
        guard signature.count == Int(crypto_sign_BYTES) else { return false }
        return signature.withUnsafeBufferPointer { sig in
            message.withUnsafeBufferPointer { msg in
                bytes.withUnsafeBufferPointer { pk in
                    crypto_sign_verify_detached(sig.baseAddress!, msg.baseAddress, UInt64(msg.count), pk.baseAddress!) == 0
                }
            }
        }
    }

    /// The X25519 public key that corresponds to this Ed25519 key (birational map).
    public func keyAgreementKey() throws -> KeyAgreementPublicKey {
        Sodium.ensureInitialized()
        var out = [UInt8](repeating: 0, count: Int(crypto_scalarmult_curve25519_BYTES))
        let rc = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { crypto_sign_ed25519_pk_to_curve25519(o.baseAddress!, $0.baseAddress!) }
        }
        guard rc == 0 else { throw CryptoError.weakPublicKey }
        return try KeyAgreementPublicKey(bytes: out)
    }

    /// Short printable fingerprint: the first 8 bytes of BLAKE2b-256 of the key, hex.
    public var fingerprint: String {
        Hex.encode(Array(Blake2b.hash(bytes, outputLength: 32).prefix(8)))
    }
}

/// An Ed25519 key pair, reconstructed from a 32-byte seed (the only part that is stored).
public struct SigningKeyPair: Sendable {
    /// Length of the seed a key file stores.
    public static let seedLength = Int(crypto_sign_SEEDBYTES)

    /// The public half.
    public let publicKey: SigningPublicKey
    /// The 32-byte seed; everything else derives from it.
    public let seed: SecretBytes
    private let secretKey: SecretBytes

    /// A fresh random key pair.
    public init() {
        try! self.init(seed: SecretBytes(randomCount: Self.seedLength)) // length is right by construction
    }

    /// The key pair for a stored seed.
    public init(seed: SecretBytes) throws {
        Sodium.ensureInitialized()
        guard seed.count == Self.seedLength else {
            throw CryptoError.invalidLength(what: "Ed25519 seed", expected: Self.seedLength, actual: seed.count)
        }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        let sk = SecretBytes(count: Int(crypto_sign_SECRETKEYBYTES)) { skBuf in
            seed.withUnsafeBytes { s in
                _ = pk.withUnsafeMutableBufferPointer { p in
                    crypto_sign_seed_keypair(p.baseAddress!, skBuf.baseAddress!.assumingMemoryBound(to: UInt8.self), s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        self.seed = seed
        self.secretKey = sk
        self.publicKey = try SigningPublicKey(bytes: pk)
    }

    /// A detached Ed25519 signature (64 bytes) of `message`.
    public func sign(_ message: [UInt8]) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        secretKey.withUnsafeBytes { sk in
            _ = sig.withUnsafeMutableBufferPointer { s in
                message.withUnsafeBufferPointer { m in
                    crypto_sign_detached(s.baseAddress!, nil, m.baseAddress, UInt64(m.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return sig
    }

    /// The X25519 key pair that corresponds to this Ed25519 key pair, used as the Noise static key.
    public func keyAgreementKeyPair() -> KeyAgreementKeyPair {
        let x = SecretBytes(count: Int(crypto_scalarmult_curve25519_BYTES)) { out in
            secretKey.withUnsafeBytes { sk in
                _ = crypto_sign_ed25519_sk_to_curve25519(out.baseAddress!.assumingMemoryBound(to: UInt8.self), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return try! KeyAgreementKeyPair(privateKey: x) // 32 bytes by construction
    }
}
