import MeshCrypto

/// Noise's SymmetricState for Noise_XX_25519_ChaChaPoly_BLAKE2b (Noise spec rev 34, §5.2).
/// Pure: no I/O, no clock, no randomness.
struct NoiseSymmetricState {
    static let protocolName = Array("Noise_XX_25519_ChaChaPoly_BLAKE2b".utf8)
    static let hashLength = 64

    private(set) var chainingKey: [UInt8]
    private(set) var handshakeHash: [UInt8]
    private var cipherKey: AEADKey?
    private var nonce: UInt64 = 0

    init(prologue: [UInt8]) {
        // The name (33 bytes) is shorter than HASHLEN, so it is zero-padded, not hashed.
        var h = Self.protocolName
        h += [UInt8](repeating: 0, count: Self.hashLength - h.count)
        handshakeHash = h
        chainingKey = h
        mixHash(prologue)
    }

    mutating func mixHash(_ data: [UInt8]) {
        var hasher = Blake2b()
        hasher.update(handshakeHash)
        hasher.update(data)
        handshakeHash = hasher.finalize()
    }

    mutating func mixKey(_ inputKeyMaterial: SecretBytes) {
        let out = HMACBlake2b.hkdf(chainingKey: chainingKey, inputKeyMaterial: inputKeyMaterial.revealForStorage(), outputs: 2)
        chainingKey = out[0]
        // HASHLEN is 64: the cipher key is the first 32 bytes of the second output.
        cipherKey = try! AEADKey(.chacha20poly1305, key: SecretBytes(Array(out[1].prefix(32)))) // 32 bytes by construction
        nonce = 0
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) -> [UInt8] {
        guard let key = cipherKey else {
            mixHash(plaintext)
            return plaintext
        }
        let ciphertext = key.seal(plaintext, counter: nonce, aad: handshakeHash)
        nonce += 1
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(SecureChannelError) -> [UInt8] {
        guard let key = cipherKey else {
            mixHash(ciphertext)
            return ciphertext
        }
        let plaintext: [UInt8]
        do { plaintext = try key.open(ciphertext, counter: nonce, aad: handshakeHash) } catch {
            throw SecureChannelError(.handshakeDecryptFailed, "handshake message failed authentication (tampered in transit, or the peer used other keys)")
        }
        nonce += 1
        mixHash(ciphertext)
        return plaintext
    }

    /// Noise Split, extended with a third HKDF output used as the exporter secret.
    /// Returns (initiator→responder, responder→initiator, exporter), 64 bytes each.
    func split() -> (SecretBytes, SecretBytes, SecretBytes) {
        let out = HMACBlake2b.hkdf(chainingKey: chainingKey, inputKeyMaterial: [], outputs: 3)
        return (SecretBytes(out[0]), SecretBytes(out[1]), SecretBytes(out[2]))
    }
}
