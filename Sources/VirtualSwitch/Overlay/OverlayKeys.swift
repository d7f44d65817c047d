public import MeshCrypto

/// The keys one host uses with one peer on the overlay: one per direction, so the two hosts'
/// counters never share a nonce space (Protocol.md §8.3).
public struct OverlayKeys: Sendable {
    /// Label of the secret exported from the agents' secure channel for the overlay.
    public static let exportLabel = "hostmesh-vswitch-v1"

    /// Identifies this key pair in datagram headers, so a receiver can tell the current keys
    /// from the previous ones during a rekey. Both hosts MUST use the same id for the same keys
    /// (`derive` computes it from the shared secret).
    public let keyID: UInt8
    /// Seals datagrams to the peer.
    public let send: AEADKey
    /// Opens datagrams from the peer.
    public let receive: AEADKey

    /// Keys supplied directly (tests, or keys derived elsewhere).
    public init(keyID: UInt8, send: AEADKey, receive: AEADKey) {
        self.keyID = keyID
        self.send = send
        self.receive = receive
    }

    /// Derives the pair's directional keys from a secret both hosts share, normally
    /// `ChannelSession.exportKey(label: OverlayKeys.exportLabel, length: 32)` of their channel
    /// (Protocol.md §8.3):
    ///
    ///     key(A -> B) = BLAKE2b-32(key: secret, "hostmesh-vswitch-v1 key " || A || " -> " || B)
    ///     key id      = BLAKE2b-16(key: secret, "hostmesh-vswitch-v1 key id")[0]
    ///
    /// with A and B the UTF-8 host ids. Both hosts MUST use the same `algorithm` (their channel's
    /// AEAD). `keyID` overrides the derived key id (tests).
    ///
    /// - Throws: `CryptoError` if the secret is shorter than 16 bytes or the algorithm is unavailable.
    public static func derive(from secret: SecretBytes, localHost: HostID, peerHost: HostID, keyID: UInt8? = nil,
                              algorithm: AEADAlgorithm) throws -> OverlayKeys {
        guard secret.count >= 16 else {
            throw CryptoError.invalidLength(what: "overlay shared secret", expected: 32, actual: secret.count)
        }
        func key(_ from: HostID, _ to: HostID) throws -> AEADKey {
            let label = Array("\(exportLabel) key \(from.rawValue) -> \(to.rawValue)".utf8)
            return try AEADKey(algorithm, key: SecretBytes(Blake2b.hash(label, key: secret, outputLength: 32)))
        }
        let derivedID = Blake2b.hash(Array("\(exportLabel) key id".utf8), key: secret, outputLength: 16)[0]
        return OverlayKeys(keyID: keyID ?? derivedID, send: try key(localHost, peerHost), receive: try key(peerHost, localHost))
    }

    /// The 64-bit tag that names `host` in overlay headers: the first 8 bytes, big-endian, of
    /// BLAKE2b-128("hostmesh-vswitch-v1 host " || host id).
    public static func hostTag(_ host: HostID) -> UInt64 {
        Blake2b.hash(Array("\(exportLabel) host \(host.rawValue)".utf8), outputLength: 16).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }
}
