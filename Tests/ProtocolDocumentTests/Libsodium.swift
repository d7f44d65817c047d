import CSodium

/// The primitives of Protocol.md §1, each one libsodium call, written here without MeshCrypto so
/// that the vectors are checked against libsodium itself, not against our own wrappers.
enum Libsodium {
    static func initialize() {
        precondition(sodium_init() >= 0, "libsodium failed to initialise") // a broken test machine
    }

    /// `BLAKE2b-n(key, data)`: crypto_generichash.
    static func blake2b(_ data: [UInt8], key: [UInt8] = [], length: Int = 64) -> [UInt8] {
        initialize()
        var out = [UInt8](repeating: 0, count: length)
        _ = crypto_generichash(&out, length, data, UInt64(data.count), key.isEmpty ? nil : key, key.count)
        return out
    }

    /// HMAC over BLAKE2b-512, block length 128 (RFC 2104; keys here are at most 64 bytes).
    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let padded = key + [UInt8](repeating: 0, count: 128 - key.count)
        let inner = blake2b(padded.map { $0 ^ 0x36 } + data)
        return blake2b(padded.map { $0 ^ 0x5c } + inner)
    }

    /// Noise's HKDF with `outputs` outputs.
    static func hkdf(_ chainingKey: [UInt8], _ material: [UInt8], outputs: Int) -> [[UInt8]] {
        let temp = hmac(key: chainingKey, material)
        var previous: [UInt8] = [], result: [[UInt8]] = []
        for i in 1...outputs {
            previous = hmac(key: temp, previous + [UInt8(i)])
            result.append(previous)
        }
        return result
    }

    /// Ed25519 key pair from a seed: (public key, secret key).
    static func signingKeyPair(seed: [UInt8]) -> (public: [UInt8], secret: [UInt8]) {
        initialize()
        var pk = [UInt8](repeating: 0, count: 32), sk = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_seed_keypair(&pk, &sk, seed)
        return (pk, sk)
    }

    static func sign(_ message: [UInt8], secretKey: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 64)
        _ = crypto_sign_detached(&signature, nil, message, UInt64(message.count), secretKey)
        return signature
    }

    static func verify(_ signature: [UInt8], _ message: [UInt8], publicKey: [UInt8]) -> Bool {
        crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    /// The X25519 private key that derives from an Ed25519 secret key.
    static func x25519Secret(fromEd25519 secretKey: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_sign_ed25519_sk_to_curve25519(&out, secretKey)
        return out
    }

    static func x25519Public(fromEd25519 publicKey: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_sign_ed25519_pk_to_curve25519(&out, publicKey)
        return out
    }

    static func x25519Base(_ secret: [UInt8]) -> [UInt8] {
        initialize()
        var out = [UInt8](repeating: 0, count: 32)
        _ = crypto_scalarmult_curve25519_base(&out, secret)
        return out
    }

    static func x25519(_ secret: [UInt8], _ peer: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        precondition(crypto_scalarmult_curve25519(&out, secret, peer) == 0, "low-order key in a fixed vector") // fixed inputs
        return out
    }

    /// Noise's ChaChaPoly: nonce 0x00000000 || n (little-endian).
    static func chachaPoly(key: [UInt8], nonce n: UInt64, aad: [UInt8], _ plaintext: [UInt8]) -> [UInt8] {
        let nonce = [0, 0, 0, 0] + withUnsafeBytes(of: n.littleEndian, Array.init)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        _ = crypto_aead_chacha20poly1305_ietf_encrypt(&out, nil, plaintext, UInt64(plaintext.count), aad, UInt64(aad.count), nil, nonce, key)
        return out
    }

    /// AES-256-GCM with nonce 0x00000000 || counter (big-endian). Nil where the CPU lacks AES-NI.
    static func aes256gcm(key: [UInt8], counter: UInt64, aad: [UInt8], _ plaintext: [UInt8]) -> [UInt8]? {
        initialize()
        guard crypto_aead_aes256gcm_is_available() == 1 else { return nil }
        let nonce = [0, 0, 0, 0] + withUnsafeBytes(of: counter.bigEndian, Array.init)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        _ = crypto_aead_aes256gcm_encrypt(&out, nil, plaintext, UInt64(plaintext.count), aad, UInt64(aad.count), nil, nonce, key)
        return out
    }

    /// XChaCha20-Poly1305 with nonce 0x00 * 16 || counter (big-endian).
    static func xchachaPoly(key: [UInt8], counter: UInt64, aad: [UInt8], _ plaintext: [UInt8]) -> [UInt8] {
        initialize()
        let nonce = [UInt8](repeating: 0, count: 16) + withUnsafeBytes(of: counter.bigEndian, Array.init)
        var out = [UInt8](repeating: 0, count: plaintext.count + 16)
        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(&out, nil, plaintext, UInt64(plaintext.count), aad, UInt64(aad.count), nil, nonce, key)
        return out
    }
}

/// A protobuf writer for the vectors, written from the field numbers of Protocol.md §13 (not from
/// the generated Swift): fields in number order, default values omitted, as proto3 encoders do.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    mutating func uint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        varint(UInt64(field << 3)); varint(value)
    }

    mutating func int(_ field: Int, _ value: Int64) { uint(field, UInt64(bitPattern: value)) }
    mutating func bool(_ field: Int, _ value: Bool) { uint(field, value ? 1 : 0) }

    mutating func bytes(_ field: Int, _ value: [UInt8], always: Bool = false) {
        guard !value.isEmpty || always else { return }
        varint(UInt64(field << 3 | 2)); varint(UInt64(value.count)); bytes += value
    }

    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    static func u16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
}
