import MeshCrypto
import NIOCore
import Testing

@Suite struct MeshCryptoTests {
    @Test func signAndVerify() throws {
        let pair = SigningKeyPair()
        let sig = pair.sign(Array("hello".utf8))
        #expect(pair.publicKey.isValidSignature(sig, for: Array("hello".utf8)))
        #expect(!pair.publicKey.isValidSignature(sig, for: Array("hellp".utf8)))
        var bad = sig; bad[3] ^= 1
        #expect(!pair.publicKey.isValidSignature(bad, for: Array("hello".utf8)))
        // Same seed, same key.
        let again = try SigningKeyPair(seed: SecretBytes(pair.seed.revealForStorage()))
        #expect(again.publicKey == pair.publicKey)
    }

    @Test func keyAgreementIsSymmetricAndMatchesEd25519Conversion() throws {
        let a = SigningKeyPair(), b = SigningKeyPair()
        let ax = a.keyAgreementKeyPair(), bx = b.keyAgreementKeyPair()
        #expect(try a.publicKey.keyAgreementKey() == ax.publicKey)
        let s1 = try ax.sharedSecret(with: bx.publicKey), s2 = try bx.sharedSecret(with: ax.publicKey)
        #expect(s1.constantTimeEquals(s2))
        // A low-order point (all zeros) is refused.
        #expect(throws: CryptoError.weakPublicKey) { try ax.sharedSecret(with: KeyAgreementPublicKey(bytes: [UInt8](repeating: 0, count: 32))) }
    }

    @Test(arguments: AEADAlgorithm.allCases.filter(\.isAvailable))
    func aeadRoundTripAndTamper(algorithm: AEADAlgorithm) throws {
        let key = try AEADKey(algorithm, key: SecretBytes(randomCount: 32))
        let msg = Array("the quick brown fox".utf8)
        let sealed = key.seal(msg, counter: 7, aad: [1, 2, 3])
        #expect(try key.open(sealed, counter: 7, aad: [1, 2, 3]) == msg)
        #expect(throws: CryptoError.authenticationFailed) { try key.open(sealed, counter: 8, aad: [1, 2, 3]) }
        #expect(throws: CryptoError.authenticationFailed) { try key.open(sealed, counter: 7, aad: [1, 2]) }
        var tampered = sealed; tampered[0] ^= 0x80
        #expect(throws: CryptoError.authenticationFailed) { try key.open(tampered, counter: 7, aad: [1, 2, 3]) }
        // ByteBuffer path agrees with the array path.
        var out = ByteBuffer()
        key.seal(ByteBuffer(bytes: msg), counter: 7, aad: [1, 2, 3], appendingTo: &out)
        #expect(Array(out.readableBytesView) == sealed)
        let opened = try key.open(out, counter: 7, aad: [1, 2, 3], allocator: ByteBufferAllocator())
        #expect(Array(opened.readableBytesView) == msg)
        // Empty plaintext works both ways.
        #expect(try key.open(key.seal([], counter: 1), counter: 1) == [])
    }

    /// AES-256-GCM's known answers, computed with libsodium and with Python's `cryptography`
    /// (both agree): key 00 01 … 1f, counter 7 (nonce 00…00 07), AAD 01 02 03. The sealing code is
    /// OpenSSL's, so this checks it against two other implementations, the empty message included.
    @Test func aes256gcmKnownAnswers() throws {
        let key = try AEADKey(.aes256gcm, key: SecretBytes(Array(0..<32)))
        let sealed = key.seal(Array("the quick brown fox".utf8), counter: 7, aad: [1, 2, 3])
        #expect(Hex.encode(sealed) == "9405763f66623799af7f8d5d5c23df441d6fb8c241208aa626a89a7c266167b941e230")
        #expect(Hex.encode(key.seal([], counter: 7)) == "5a9ed19465e386f56078bc645d265e74")
    }

    /// A record that fails its tag leaves the output buffer's readable bytes as they were, and the key goes on
    /// sealing and opening correctly from many threads at once (each context is used under its lock).
    @Test func aes256gcmRefusalLeavesNothingAndKeySharesSafely() async throws {
        let key = try AEADKey(.aes256gcm, key: SecretBytes(randomCount: 32))
        var sealed = ByteBuffer()
        key.seal(ByteBuffer(repeating: 0x5a, count: 70_000), counter: 3, aad: [9], appendingTo: &sealed)
        var tampered = sealed
        tampered.setInteger(UInt8(1) ^ tampered.getInteger(at: 100, as: UInt8.self)!, at: 100)
        var output = ByteBuffer(bytes: [1, 2, 3])
        #expect(throws: CryptoError.authenticationFailed) { try key.open(tampered, counter: 3, aad: [9], appendingTo: &output) }
        #expect(Array(output.readableBytesView) == [1, 2, 3])
        try key.open(sealed, counter: 3, aad: [9], appendingTo: &output)
        #expect(output.readableBytes == 3 + 70_000)
        let agreed = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    (0..<200).allSatisfy { round in
                        let message = [UInt8](repeating: UInt8(task), count: 1_000 + round)
                        let counter = UInt64(task * 1_000 + round)
                        // A refusal is a mismatch here, which the expectation below reports.
                        return (try? key.open(key.seal(message, counter: counter), counter: counter)) == message
                    }
                }
            }
            return await group.allSatisfy { $0 }
        }
        #expect(agreed)
    }

    /// RFC 7693 Appendix A: BLAKE2b-512("abc").
    @Test func blake2bKnownAnswer() {
        let digest = Hex.encode(Blake2b.hash(Array("abc".utf8)))
        #expect(digest == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
        var inc = Blake2b(); inc.update(Array("a".utf8)); inc.update(Array("bc".utf8))
        #expect(Hex.encode(inc.finalize()) == digest)
    }

    @Test func hmacAndHKDFAreDeterministicAndKeyed() {
        let a = HMACBlake2b.authenticate([1, 2, 3], key: [9])
        #expect(a.count == 64)
        #expect(a == HMACBlake2b.authenticate([1, 2, 3], key: [9]))
        #expect(a != HMACBlake2b.authenticate([1, 2, 3], key: [8]))
        let outs = HMACBlake2b.hkdf(chainingKey: [UInt8](repeating: 1, count: 64), inputKeyMaterial: [2], outputs: 3)
        #expect(outs.count == 3 && Set(outs).count == 3)
        #expect(HMACBlake2b.hkdf(chainingKey: [UInt8](repeating: 1, count: 64), inputKeyMaterial: [2], outputs: 2) == Array(outs.prefix(2)))
    }

    @Test func hexRoundTrip() {
        #expect(Hex.decode(Hex.encode([0, 255, 16])) == [0, 255, 16])
        #expect(Hex.decode("zz") == nil && Hex.decode("abc") == nil)
    }
}
