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
