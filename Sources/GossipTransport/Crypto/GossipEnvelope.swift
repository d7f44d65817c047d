import Membership
import MeshCrypto

/// The byte layout of an encrypted gossip datagram (Protocol.md §4.12.1):
///
/// ```
/// offset size field
/// 0      1    version      2
/// 1      4    key id       u32 big-endian (GossipKeyID)
/// 5      6    epoch        u48 big-endian  ┐ session (11 bytes)
/// 11     5    salt         u40 big-endian  ┘
/// 16     8    sequence     u64 big-endian
/// 24     n    ciphertext   the encoded GossipDatagram
/// 24+n   16   tag          Poly1305
/// ```
///
/// `ciphertext || tag = XChaCha20-Poly1305(key = BLAKE2b-256(key = K, "hostmesh-gossip-v1
/// datagram" || bytes 5..<16), nonce = 0x00 * 16 || sequence (big-endian), aad = bytes 0..<24 ||
/// the receiver's member id, plaintext)`. Every sender session has its own subkey and never
/// repeats a sequence under it, so nonces are unique although every member holds the same key.
/// The receiver's id is authenticated but not sent: a datagram opens only at the member it was
/// sealed for, so one sniffed between two members cannot be replayed to a third (whose replay
/// window for that sender has not seen it). 40 bytes in all, the budget the membership core
/// reserves (`MembershipSettings.datagramOverhead`).
public enum GossipEnvelope {
    /// Version byte of this layout: 2 since the receiver is bound into the AAD (version 1 did
    /// not, and its datagrams could be replayed from one member to another).
    public static let version: UInt8 = 2
    /// Header bytes before the ciphertext (version, key id, session, sequence), all authenticated as AAD.
    public static let headerLength = 24
    /// Bytes the envelope adds to the encoded datagram: header and tag.
    public static let overhead = headerLength + AEADAlgorithm.tagLength
    /// Domain-separation label of the per-session subkey.
    static let subkeyLabel = Array("hostmesh-gossip-v1 datagram".utf8)

    /// The parsed header of a datagram.
    struct Header: Hashable {
        var keyID: GossipKeyID
        var session: GossipSession
        var sequence: UInt64
    }

    /// The header bytes for these values.
    static func header(keyID: GossipKeyID, session: GossipSession, sequence: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [version]
        bytes.reserveCapacity(headerLength)
        appendBigEndian(keyID.rawValue, to: &bytes)
        appendSession(session, to: &bytes)
        appendBigEndian(sequence, to: &bytes)
        return bytes
    }

    /// Reads the header; nil if `bytes` cannot hold a header and a tag or the version is unknown.
    static func parseHeader(_ bytes: [UInt8]) -> Header? {
        guard bytes.count >= overhead, bytes[0] == version else { return nil }
        return Header(
            keyID: GossipKeyID(rawValue: UInt32(truncatingIfNeeded: readBigEndian(bytes, at: 1, count: 4))),
            session: GossipSession(epoch: readBigEndian(bytes, at: 5, count: 6), salt: readBigEndian(bytes, at: 11, count: 5)),
            sequence: readBigEndian(bytes, at: 16, count: 8))
    }

    /// The authenticated data of a datagram: its header, then the UTF-8 bytes of the member id
    /// it is sealed for (not sent; the receiver supplies its own id). The header has a fixed
    /// length, so the concatenation is unambiguous without a length prefix.
    static func additionalData(header: some Collection<UInt8>, receiver: MemberID) -> [UInt8] {
        var aad = Array(header)
        aad.append(contentsOf: receiver.hostID.utf8)
        return aad
    }

    /// The AEAD key for one sender session under `key`.
    static func sessionCipher(key: GossipKey, session: GossipSession) -> AEADKey {
        var subkey = sessionSubkey(key: key, session: session)
        defer { for index in subkey.indices { subkey[index] = 0 } }
        do {
            return try AEADKey(.xchacha20poly1305, key: SecretBytes(subkey))
        } catch {
            // A 32-byte key for XChaCha20-Poly1305 (always available) cannot be refused.
            preconditionFailure("XChaCha20-Poly1305 refused a 32-byte key: \(error)")
        }
    }

    /// `BLAKE2b-256(key = K, "hostmesh-gossip-v1 datagram" || session bytes)`.
    static func sessionSubkey(key: GossipKey, session: GossipSession) -> [UInt8] {
        var input = subkeyLabel
        appendSession(session, to: &input)
        return Blake2b.hash(input, key: key.secret, outputLength: AEADAlgorithm.keyLength)
    }

    /// The session's 11 header bytes: epoch as u48, salt as u40, big-endian.
    static func appendSession(_ session: GossipSession, to bytes: inout [UInt8]) {
        for shift in stride(from: 40, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: session.epoch >> UInt64(shift))) }
        for shift in stride(from: 32, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: session.salt >> UInt64(shift))) }
    }

    static func appendBigEndian(_ value: some FixedWidthInteger, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    static func readBigEndian(_ bytes: [UInt8], at offset: Int, count: Int) -> UInt64 {
        bytes[offset..<offset + count].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
