public import Membership
import MeshCrypto

/// A dropped datagram: the reason it is counted under and a detail for the log line.
public struct GossipDrop: Error, Hashable, Sendable, CustomStringConvertible {
    /// The counter the drop is counted under.
    public var reason: GossipDropReason
    /// What exactly was wrong, for logs.
    public var detail: String

    /// A drop.
    public init(_ reason: GossipDropReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// `reason: detail`.
    public var description: String { "\(reason): \(detail)" }
}

/// Opens incoming gossip datagrams (Protocol.md §4.12): size, header, key id, AEAD tag, then
/// the decoded datagram's sender against its replay window. Pure: no sockets, no clock.
///
/// The tag covers the id of the member the datagram was sealed for, and the opener checks it
/// against `localID`: a datagram sealed for another member fails as `forged`, so the replay
/// windows, kept per sender, need not also be kept per receiver.
///
/// Keeps, per sender member id, the greatest session seen and a replay window for it, and a
/// bounded cache of session ciphers (added only after a tag verified, so forged datagrams
/// cannot fill it).
public struct GossipDatagramOpener: Sendable {
    /// The member this opener opens for: only datagrams sealed for it verify.
    public let localID: MemberID
    /// Largest UDP payload accepted; larger ones are dropped as `oversized`.
    public var maxDatagramSize: Int
    /// Most senders whose replay state is kept; beyond it the least recently heard is evicted.
    public var maxSenders: Int
    /// Most session ciphers cached; beyond it the cache is emptied and refilled.
    public var maxCachedCiphers: Int

    struct CipherKey: Hashable {
        var keyID: GossipKeyID
        var session: GossipSession
    }

    struct CachedCipher {
        /// The key the cipher was derived from: a removed or replaced key must not keep opening.
        var secret: SecretBytes
        var cipher: AEADKey
    }

    /// Sequences each sender session's replay window remembers (Protocol.md §4.12.4).
    static let replayWindowWidth: UInt64 = 1024

    struct SenderState {
        var session: GossipSession
        var window: ReplayWindow
        var lastHeard: UInt64
    }

    private var ciphers: [CipherKey: CachedCipher] = [:]
    private var senders: [MemberID: SenderState] = [:]
    private var accepted: UInt64 = 0

    /// An opener for member `localID` with no replay state.
    public init(localID: MemberID, maxDatagramSize: Int = 1200, maxSenders: Int = 16_384, maxCachedCiphers: Int = 4096) {
        self.localID = localID
        self.maxDatagramSize = maxDatagramSize
        self.maxSenders = maxSenders
        self.maxCachedCiphers = maxCachedCiphers
    }

    /// Number of senders with replay state.
    public var senderCount: Int { senders.count }

    /// Checks, decrypts and decodes one UDP payload; on success the sequence is recorded so the
    /// same datagram is refused next time.
    public mutating func open(_ bytes: [UInt8], with keyring: GossipKeyring) -> Result<GossipDatagram, GossipDrop> {
        guard bytes.count <= maxDatagramSize else {
            return .failure(GossipDrop(.oversized, "\(bytes.count) bytes, at most \(maxDatagramSize) accepted"))
        }
        guard let header = GossipEnvelope.parseHeader(bytes) else {
            if bytes.count < GossipEnvelope.overhead {
                return .failure(GossipDrop(.malformed, "\(bytes.count) bytes, shorter than a header and a tag"))
            }
            return .failure(GossipDrop(.malformed, "envelope version \(bytes[0]), this member speaks \(GossipEnvelope.version)"))
        }
        guard let key = keyring.key(header.keyID) else {
            return .failure(GossipDrop(.unknownKey, "key id \(header.keyID) is not in the keyring (\(keyring))"))
        }
        let cipherKey = CipherKey(keyID: header.keyID, session: header.session)
        let cached = ciphers[cipherKey].flatMap { $0.secret === key.secret ? $0.cipher : nil }
        let cipher = cached ?? GossipEnvelope.sessionCipher(key: key, session: header.session)
        let plaintext: [UInt8]
        do {
            plaintext = try cipher.open(
                Array(bytes[GossipEnvelope.headerLength...]), counter: header.sequence,
                aad: GossipEnvelope.additionalData(header: bytes[0..<GossipEnvelope.headerLength], receiver: localID))
        } catch {
            // Also a genuine datagram sealed for another member (replayed, or sent to an
            // address that now belongs to someone else): the two cannot be told apart.
            return .failure(
                GossipDrop(.forged, "tag does not verify under key \(header.keyID) for member \(localID) (forged, or sealed for another member)"))
        }
        if cached == nil {
            if ciphers.count >= maxCachedCiphers { ciphers.removeAll(keepingCapacity: true) }
            ciphers[cipherKey] = CachedCipher(secret: key.secret, cipher: cipher)
        }
        let datagram: GossipDatagram
        do {
            datagram = try GossipCodec.decodeDatagram(plaintext)
        } catch {
            return .failure(GossipDrop(.undecodable, error.description))
        }
        guard acceptSequence(header, from: datagram.sender) else {
            return .failure(
                GossipDrop(.replayed, "sequence \(header.sequence) of session \(header.session) from \(datagram.sender)"))
        }
        return .success(datagram)
    }

    /// Drops the replay state of `sender` (it died, left or was forgotten): its next datagram,
    /// from whatever session, starts a new window. This is also how a member whose clock went
    /// backwards across a restart gets back in: it is refused until declared dead.
    public mutating func forget(sender: MemberID) {
        senders[sender] = nil
    }

    private mutating func acceptSequence(_ header: GossipEnvelope.Header, from sender: MemberID) -> Bool {
        accepted += 1
        if var state = senders[sender] {
            if header.session < state.session { return false }
            if header.session > state.session {
                state.session = header.session
                state.window = ReplayWindow(width: Self.replayWindowWidth)
            }
            guard state.window.accept(header.sequence) else { return false }
            state.lastHeard = accepted
            senders[sender] = state
            return true
        }
        var window = ReplayWindow(width: Self.replayWindowWidth)
        guard window.accept(header.sequence) else { return false }
        if senders.count >= maxSenders, let oldest = senders.min(by: { $0.value.lastHeard < $1.value.lastHeard })?.key {
            senders[oldest] = nil
        }
        senders[sender] = SenderState(session: header.session, window: window, lastHeard: accepted)
        return true
    }
}
