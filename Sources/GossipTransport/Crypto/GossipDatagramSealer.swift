public import Membership
import MeshCrypto

/// Seals this member's outgoing gossip datagrams (Protocol.md §4.12.1).
///
/// Holds the sender's session and its sequence counter, which starts at 1 and increases by one
/// per datagram whatever the destination or the key; with the session it makes every nonce
/// unique. Caches the session cipher of the primary key.
public struct GossipDatagramSealer: Sendable {
    /// This sender's session (the first 16 bytes of its nonces).
    public let session: GossipSession
    /// The sequence number of the last datagram sealed (0: none yet).
    public private(set) var lastSequence: UInt64 = 0
    private var cached: (key: GossipKey, cipher: AEADKey)?

    /// A sealer for a new session (`GossipSession.startingNow()` unless given).
    public init(session: GossipSession = .startingNow()) {
        self.session = session
    }

    /// Encrypts and authenticates `plaintext` (an encoded `GossipDatagram`) with the keyring's
    /// primary key for member `receiver` and returns the UDP payload, `GossipEnvelope.overhead`
    /// bytes longer. Only `receiver` opens it (Protocol.md §4.12.1).
    public mutating func seal(_ plaintext: [UInt8], for receiver: MemberID, with keyring: GossipKeyring) -> [UInt8] {
        let key = keyring.primary
        let cipher: AEADKey
        if let cached, cached.key.id == key.id, cached.key.secret === key.secret {
            cipher = cached.cipher
        } else {
            cipher = GossipEnvelope.sessionCipher(key: key, session: session)
            cached = (key, cipher)
        }
        lastSequence += 1
        let header = GossipEnvelope.header(keyID: key.id, session: session, sequence: lastSequence)
        let aad = GossipEnvelope.additionalData(header: header, receiver: receiver)
        return header + cipher.seal(plaintext, counter: lastSequence, aad: aad)
    }
}
