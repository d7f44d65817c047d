import CSodium

/// BLAKE2b (libsodium's `crypto_generichash`), one-shot and incremental.
///
/// Non-copyable: the hasher owns a 64-byte-aligned C state that must not be shared by copies.
public struct Blake2b: ~Copyable {
    /// Largest output length (64 bytes), the Noise HASHLEN for BLAKE2b.
    public static let maxOutputLength = Int(crypto_generichash_BYTES_MAX)
    /// BLAKE2b's block length (128 bytes), used by HMAC.
    public static let blockLength = 128

    /// BLAKE2b of `data`, optionally keyed (key of 16...64 bytes), with 16...64 output bytes.
    public static func hash(_ data: [UInt8], key: [UInt8] = [], outputLength: Int = maxOutputLength) -> [UInt8] {
        var h = Blake2b(key: key, outputLength: outputLength)
        h.update(data)
        return h.finalize()
    }

    /// Keyed BLAKE2b with a secret key.
    public static func hash(_ data: [UInt8], key: SecretBytes, outputLength: Int = maxOutputLength) -> [UInt8] {
        var h = Blake2b(secretKey: key, outputLength: outputLength)
        h.update(data)
        return h.finalize()
    }

    // libsodium's state struct is declared 64-byte aligned, which Swift imports as opaque; it lives
    // in aligned heap memory instead.
    private let state: OpaquePointer
    private let outputLength: Int

    private static func allocateState() -> OpaquePointer {
        OpaquePointer(UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64))
    }

    deinit {
        sodium_memzero(UnsafeMutableRawPointer(state), crypto_generichash_statebytes())
        UnsafeMutableRawPointer(state).deallocate()
    }

    /// An incremental hasher. `key` may be empty (unkeyed).
    public init(key: [UInt8] = [], outputLength: Int = maxOutputLength) {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength), "BLAKE2b output length must be 16...64") // programmer error
        self.outputLength = outputLength
        state = Self.allocateState()
        key.withUnsafeBufferPointer { k in
            _ = crypto_generichash_init(state, k.baseAddress, k.count, outputLength)
        }
    }

    /// An incremental hasher keyed with a secret.
    public init(secretKey: SecretBytes, outputLength: Int = maxOutputLength) {
        Sodium.ensureInitialized()
        precondition((16...64).contains(outputLength), "BLAKE2b output length must be 16...64") // programmer error
        self.outputLength = outputLength
        state = Self.allocateState()
        secretKey.withUnsafeBytes { k in
            _ = crypto_generichash_init(state, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, outputLength)
        }
    }

    /// Absorbs more input.
    public mutating func update(_ data: [UInt8]) {
        data.withUnsafeBufferPointer { d in
            _ = crypto_generichash_update(state, d.baseAddress, UInt64(d.count))
        }
    }

    /// Absorbs more input.
    public mutating func update(_ data: ArraySlice<UInt8>) {
        data.withUnsafeBufferPointer { d in
            _ = crypto_generichash_update(state, d.baseAddress, UInt64(d.count))
        }
    }

    /// The digest; consumes the hasher.
    public consuming func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: outputLength)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_generichash_final(state, o.baseAddress!, outputLength)
        }
        return out
    }
}

/// HMAC with BLAKE2b (block 128, output 64) and the Noise HKDF built on it (Noise spec §4.3).
public enum HMACBlake2b {
    /// HMAC-BLAKE2b(key, data), 64 bytes. Keys longer than a block are hashed first (RFC 2104).
    public static func authenticate(_ data: [UInt8], key: [UInt8]) -> [UInt8] {
        var k = key.count > Blake2b.blockLength ? Blake2b.hash(key) : key
        k += [UInt8](repeating: 0, count: Blake2b.blockLength - k.count)
        var inner = Blake2b()
        inner.update(k.map { $0 ^ 0x36 })
        inner.update(data)
        let innerDigest = inner.finalize()
        var outer = Blake2b()
        outer.update(k.map { $0 ^ 0x5c })
        outer.update(innerDigest)
        for i in k.indices { k[i] = 0 }
        return outer.finalize()
    }

    /// Noise's HKDF(chaining_key, input_key_material, num_outputs) with HASHLEN = 64.
    public static func hkdf(chainingKey: [UInt8], inputKeyMaterial: [UInt8], outputs: Int) -> [[UInt8]] {
        precondition((2...3).contains(outputs), "Noise HKDF yields 2 or 3 outputs") // programmer error
        let tempKey = authenticate(inputKeyMaterial, key: chainingKey)
        var results: [[UInt8]] = []
        var previous: [UInt8] = []
        for i in 1...outputs {
            previous = authenticate(previous + [UInt8(i)], key: tempKey)
            results.append(previous)
        }
        return results
    }
}

/// Lower-case hexadecimal.
public enum Hex {
    /// Hex encoding of `bytes`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex (either case); nil if malformed.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out = [UInt8](); out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo); i += 2
        }
        return out
    }
}
