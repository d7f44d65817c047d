import CSodium
public import NIOCore

/// The authenticated ciphers Hostmesh uses. All take 32-byte keys and append a 16-byte tag.
public enum AEADAlgorithm: String, Sendable, CaseIterable, Codable {
    /// AES-256-GCM: fastest where the CPU has AES-NI and PCLMUL. Nonce: 4 zero bytes, counter big-endian.
    case aes256gcm = "aes-256-gcm"
    /// XChaCha20-Poly1305 (IETF): the portable choice. Nonce: 16 zero bytes, counter big-endian.
    case xchacha20poly1305 = "xchacha20-poly1305"
    /// ChaCha20-Poly1305 (IETF), Noise's ChaChaPoly. Nonce: 4 zero bytes, counter little-endian.
    case chacha20poly1305 = "chacha20-poly1305"

    /// Key length in bytes (32 for all three).
    public static let keyLength = 32
    /// Authentication tag length in bytes (16 for all three).
    public static let tagLength = 16

    /// Whether this host offers the algorithm. OpenSSL's AES-256-GCM runs on any CPU, but only
    /// where libsodium finds AES-NI and PCLMUL is it fast and free of table lookups that leak
    /// timing, so AES-256-GCM is offered only there (the choice from before OpenSSL did the work).
    public var isAvailable: Bool {
        self == .aes256gcm ? Sodium.isAES256GCMAvailable : true
    }

    /// Bulk ciphers this host offers, most preferred first: AES-256-GCM only where the CPU has it.
    public static var bulkPreference: [AEADAlgorithm] {
        Sodium.isAES256GCMAvailable ? [.aes256gcm, .xchacha20poly1305] : [.xchacha20poly1305]
    }

    fileprivate func nonce(_ counter: UInt64) -> [UInt8] {
        switch self {
        case .aes256gcm:
            return [0, 0, 0, 0] + withUnsafeBytes(of: counter.bigEndian, Array.init)
        case .xchacha20poly1305:
            return [UInt8](repeating: 0, count: 16) + withUnsafeBytes(of: counter.bigEndian, Array.init)
        case .chacha20poly1305:
            return [0, 0, 0, 0] + withUnsafeBytes(of: counter.littleEndian, Array.init)
        }
    }
}

/// A key bound to one AEAD algorithm, ready to seal and open with counter nonces.
///
/// For AES-256-GCM the key schedule is expanded once (OpenSSL's contexts, `AESGCMContexts`) and
/// reused for every record; the ChaCha20 ciphers are libsodium's.
public final class AEADKey: Sendable {
    /// The algorithm this key is for.
    public let algorithm: AEADAlgorithm
    private let key: SecretBytes
    private let aes: AESGCMContexts?

    /// Binds a 32-byte key to `algorithm`.
    public init(_ algorithm: AEADAlgorithm, key: SecretBytes) throws {
        Sodium.ensureInitialized()
        guard key.count == AEADAlgorithm.keyLength else {
            throw CryptoError.invalidLength(what: "\(algorithm.rawValue) key", expected: AEADAlgorithm.keyLength, actual: key.count)
        }
        guard algorithm.isAvailable else { throw CryptoError.algorithmUnavailable(algorithm.rawValue) }
        self.algorithm = algorithm
        self.key = key
        if algorithm == .aes256gcm {
            aes = try key.withUnsafeBytes { try AESGCMContexts(key: $0) }
        } else {
            aes = nil
        }
    }

    /// Encrypts `plaintext` under nonce `counter` and returns ciphertext followed by the tag.
    public func seal(_ plaintext: [UInt8], counter: UInt64, aad: [UInt8] = []) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + AEADAlgorithm.tagLength)
        out.withUnsafeMutableBytes { o in
            plaintext.withUnsafeBytes { p in sealRaw(o, p, counter: counter, aad: aad) }
        }
        return out
    }

    /// Decrypts `ciphertext` (with its tag) sealed under nonce `counter`.
    public func open(_ ciphertext: [UInt8], counter: UInt64, aad: [UInt8] = []) throws -> [UInt8] {
        guard ciphertext.count >= AEADAlgorithm.tagLength else { throw CryptoError.authenticationFailed }
        var out = [UInt8](repeating: 0, count: ciphertext.count - AEADAlgorithm.tagLength)
        let ok = out.withUnsafeMutableBytes { o in
            ciphertext.withUnsafeBytes { c in openRaw(o, c, counter: counter, aad: aad) }
        }
        guard ok else { throw CryptoError.authenticationFailed }
        return out
    }

    /// Encrypts the readable bytes of `plaintext` and appends ciphertext and tag to `output`,
    /// without intermediate copies (the record layer's hot path).
    public func seal(_ plaintext: ByteBuffer, counter: UInt64, aad: [UInt8], appendingTo output: inout ByteBuffer) {
        let sealedLength = plaintext.readableBytes + AEADAlgorithm.tagLength
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: sealedLength) { o in
            plaintext.withUnsafeReadableBytes { p in
                sealRaw(UnsafeMutableRawBufferPointer(rebasing: o[0..<sealedLength]), p, counter: counter, aad: aad)
            }
            return sealedLength
        }
    }

    /// Decrypts the readable bytes of `ciphertext` (ciphertext and tag) into a new buffer.
    public func open(_ ciphertext: ByteBuffer, counter: UInt64, aad: [UInt8], allocator: ByteBufferAllocator) throws -> ByteBuffer {
        guard ciphertext.readableBytes >= AEADAlgorithm.tagLength else { throw CryptoError.authenticationFailed }
        let plainLength = ciphertext.readableBytes - AEADAlgorithm.tagLength
        var out = allocator.buffer(capacity: plainLength)
        var ok = false
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: plainLength) { o in
            ciphertext.withUnsafeReadableBytes { c in
                ok = openRaw(UnsafeMutableRawBufferPointer(rebasing: o[0..<plainLength]), c, counter: counter, aad: aad)
            }
            return ok ? plainLength : 0
        }
        guard ok else { throw CryptoError.authenticationFailed }
        return out
    }

    /// Decrypts the readable bytes of `ciphertext` (ciphertext and tag) and appends the
    /// plaintext to `output`. On failure `output` is unchanged.
    public func open(_ ciphertext: ByteBuffer, counter: UInt64, aad: [UInt8], appendingTo output: inout ByteBuffer) throws(CryptoError) {
        guard ciphertext.readableBytes >= AEADAlgorithm.tagLength else { throw CryptoError.authenticationFailed }
        let plainLength = ciphertext.readableBytes - AEADAlgorithm.tagLength
        var ok = false
        output.writeWithUnsafeMutableBytes(minimumWritableBytes: plainLength) { o in
            ciphertext.withUnsafeReadableBytes { c in
                ok = openRaw(UnsafeMutableRawBufferPointer(rebasing: o[0..<plainLength]), c, counter: counter, aad: aad)
            }
            return ok ? plainLength : 0
        }
        guard ok else { throw CryptoError.authenticationFailed }
    }

    private func sealRaw(_ out: UnsafeMutableRawBufferPointer, _ plaintext: UnsafeRawBufferPointer, counter: UInt64, aad: [UInt8]) {
        let nonce = algorithm.nonce(counter)
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let p = plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let pLen = UInt64(plaintext.count)
        aad.withUnsafeBufferPointer { a in
            nonce.withUnsafeBufferPointer { n in
                switch algorithm {
                case .aes256gcm:
                    aes!.seal(out, plaintext, nonce: n, aad: a)
                case .xchacha20poly1305:
                    key.withUnsafeBytes { k in
                        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(o, nil, p, pLen, a.baseAddress, UInt64(a.count), nil, n.baseAddress!,
                                                                       k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                case .chacha20poly1305:
                    key.withUnsafeBytes { k in
                        _ = crypto_aead_chacha20poly1305_ietf_encrypt(o, nil, p, pLen, a.baseAddress, UInt64(a.count), nil, n.baseAddress!,
                                                                      k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
    }

    private func openRaw(_ out: UnsafeMutableRawBufferPointer, _ ciphertext: UnsafeRawBufferPointer, counter: UInt64, aad: [UInt8]) -> Bool {
        let nonce = algorithm.nonce(counter)
        // libsodium writes nothing for an empty plaintext; any non-nil pointer will do.
        var scratch: UInt8 = 0
        return withUnsafeMutablePointer(to: &scratch) { scratchPtr -> Bool in
            let o = out.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? scratchPtr
            let c = ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let cLen = UInt64(ciphertext.count)
            return aad.withUnsafeBufferPointer { a in
                nonce.withUnsafeBufferPointer { n in
                    let rc: Int32
                    switch algorithm {
                    case .aes256gcm:
                        rc = aes!.open(out, ciphertext, nonce: n, aad: a) ? 0 : -1
                    case .xchacha20poly1305:
                        rc = key.withUnsafeBytes { k in
                            crypto_aead_xchacha20poly1305_ietf_decrypt(o, nil, nil, c, cLen, a.baseAddress, UInt64(a.count), n.baseAddress!,
                                                                       k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    case .chacha20poly1305:
                        rc = key.withUnsafeBytes { k in
                            crypto_aead_chacha20poly1305_ietf_decrypt(o, nil, nil, c, cLen, a.baseAddress, UInt64(a.count), n.baseAddress!,
                                                                      k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                    return rc == 0
                }
            }
        }
    }
}
